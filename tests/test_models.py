import time

import pytest
import torch

from searchr1_lite.models import load_model, qwen25_tokenizer
from searchr1_lite.offline import HubUnavailable


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-qwen2", device="cpu")


def test_qwen25_tokenizer_has_the_real_ids():
    tok = qwen25_tokenizer()
    assert len(tok) == 151665
    assert tok("Hello world!").input_ids == [9707, 1879, 0]
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    # tags the policy writes are ordinary text, split into several tokens (the rollout must not assume one token)
    assert len(tok("<search>").input_ids) > 1 and tok.decode(tok("</search>").input_ids) == "</search>"


def test_tiny_qwen2_generates_and_is_seeded(tiny):
    model, tok = tiny
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == ids.input_ids.shape[1] + 5
    again, _ = load_model("tiny-qwen2", device="cpu")
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_smollm2_preset_answers_a_question():
    model, tok = load_model("smollm2-135m-instruct", device="cpu")
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in reply
    assert model.dtype == torch.float32 and not hasattr(model.config, "quantization_config")


def test_a_local_folder_loads_like_the_hub(tiny, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, tok2 = load_model(str(tmp_path / "m"), device="cpu")
    ids = tok("Search-R1 masks retrieved tokens.", return_tensors="pt").input_ids
    assert tok2(tok.decode(ids[0])).input_ids == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


def test_hub_id_goes_through_snapshot_download(tiny, tmp_path, monkeypatch):
    """The hub is outside this machine: mock it with a folder of the same format and check the id reaches it."""
    model, tok = tiny
    model.save_pretrained(tmp_path / "snap")
    tok.save_pretrained(tmp_path / "snap")
    asked = []

    def fake_snapshot_download(repo_id, allow_patterns=None, **kw):
        asked.append((repo_id, allow_patterns))
        return str(tmp_path / "snap")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    loaded, _ = load_model("Qwen/Qwen2.5-3B-Instruct", device="cpu")
    assert asked[0][0] == "Qwen/Qwen2.5-3B-Instruct" and "*.safetensors" in asked[0][1]
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_unreachable_hub_fails_fast_and_names_the_presets(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubUnavailable) as err:
        load_model("Qwen/Qwen2.5-3B-Instruct-does-not-exist")
    assert time.perf_counter() - start < 30  # a guard against hanging on the network, not a speed goal
    assert "smollm2-135m-instruct" in str(err.value) and "tiny-qwen2" in str(err.value)


def test_cached_tokenizer_equals_a_fresh_build():
    from searchr1_lite.models import _build_qwen25_tokenizer

    cached, fresh = qwen25_tokenizer(), _build_qwen25_tokenizer()
    text = "<|im_start|>user\nWho painted the Mona Lisa? <search>Mona Lisa</search> ünï 123<|im_end|>"
    assert cached(text).input_ids == fresh(text).input_ids
    assert cached.chat_template == fresh.chat_template and cached.eos_token_id == fresh.eos_token_id == 151645


def test_4bit_computes_in_fp16_where_the_gpu_has_no_bf16(monkeypatch):
    """A T4 (compute capability 7.5, Colab's free GPU) has no native bf16: fp16 there, bf16 from Ampere (8.0) on,
    float32 on a CPU. The GPU is outside this machine: its capability is stood in for."""
    import torch

    from searchr1_lite.models import compute_dtype

    assert compute_dtype("cpu") == torch.float32
    for capability, dtype in [((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert compute_dtype("cuda") == dtype and compute_dtype("cuda:0") == dtype


def test_a_model_loads_in_4bit_without_lora_and_its_tokenizer_alone():
    """Lesson 02 on a GPU loads the authors' policy in 4-bit (one copy, no adapter); lesson 05 needs only the
    tokenizer of a run's model."""
    from bitsandbytes.nn import Linear4bit

    from searchr1_lite.models import load_model, load_tokenizer, qwen25_tokenizer

    model, tok = load_model("tiny-qwen2", quantization="4bit", device="cpu")
    assert any(isinstance(m, Linear4bit) for m in model.modules()) and not model.training
    assert not any(p.requires_grad and "lora" in n for n, p in model.named_parameters())
    text = "<|im_start|>user\nWho painted the Mona Lisa?<|im_end|>"
    assert load_tokenizer("tiny-qwen2")(text).input_ids == tok(text).input_ids == qwen25_tokenizer()(text).input_ids
    with pytest.raises(ValueError, match="quantization must be None or '4bit'"):
        load_model("tiny-qwen2", quantization="8bit", device="cpu")


def test_rollout_and_loss_call_transformers_as_its_installed_version_asks():
    """Recent transformers 5 renamed the forward's `past_key_values` to `cache` (the old name goes in 5.40) and
    `is_gradient_checkpointing` to `is_activation_checkpointing`; the floor, 4.56.2, knows only the old names. A rollout
    through a shared prefix and a training forward that shares it must raise no deprecation warning in either."""
    import warnings

    from searchr1_lite.grpo import token_logprobs
    from searchr1_lite.models import load_policy
    from searchr1_lite.rollout import RolloutConfig, rollout

    model, tok = load_policy("tiny-qwen2", lora_layers=1, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = RolloutConfig(max_turns=1, max_new_tokens=8, seed=0)
        batch = rollout(model, tok, ["Who painted the Mona Lisa?", "Capital of France?"], None, cfg).tensors(
            tok.pad_token_id)
        model.train()
        logp, _ = token_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["gen_mask"])
        logp.sum().backward()
    deprecations = [f"{w.category.__name__}: {w.message}" for w in caught
                    if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert deprecations == []
    assert batch["gen_mask"].sum() > 0 and (logp[batch["gen_mask"].bool()] < 0).all()
