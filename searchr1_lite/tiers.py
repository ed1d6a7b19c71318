"""Hardware tiers: what each lesson runs on each kind of machine, and what that costs. One place for all of it.

    cpu    a laptop or CI: offline models (SmolLM2-135M, tiny-qwen2), float32
    t4     a GPU up to 16 GB without native bf16 (Colab's free T4, compute capability 7.5): fp16 compute
    l4     an Ampere-or-newer GPU under 40 GB (L4, A10G, RTX 3090/4090): bf16 compute
    a100   an Ampere-or-newer GPU with 40 GB or more (A100, H100, H200): bf16 compute

`pick_tier()` reads the device (memory, compute capability); a lesson's `TIER` parameter or $SEARCHR1_LITE_TIER
overrides it ($SEARCHR1_LITE_SMALL=1, the Makefile's flag for offline runs, means `cpu`).

Every lesson prints its tier, its settings and what it expects to cost. A figure is *measured* (on the machine
named) or *estimated*, and an estimate shows its arithmetic: weights + KV cache + activations for memory, tokens
x throughput for time. The GPU speeds below are assumptions until `make gpu-check` measures them (docs/gpu.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .models import OFFLINE_PRESETS
from .retrieval import TOPK
from .suggest import did_you_mean

GB = 1e9

# --------------------------------------------------------------------------- what the lessons run, per tier

_NB02_POLICY = "PeterJinGo/SearchR1-nq_hotpotqa_train-qwen2.5-3b-it-em-grpo"  # the authors' trained 3B policy
_GPU_CORPUS = "hotpotqa-distractor"  # HotpotQA's own paragraphs: the answers are in the corpus (data.py)


def _gpu_lessons(steps04: int, steps05: int, tokens: int, eval_limit: int,
                 loss_model: str = "Qwen/Qwen2.5-0.5B-Instruct") -> dict[str, dict[str, Any]]:
    """The GPU tiers differ in how much they run (steps, tokens a turn, questions evaluated) and in lessons 03 and
    03b's model, which they train whole in float32: Qwen2.5-0.5B needs about 14 GB there (`estimate_full_memory`),
    more than a T4 leaves, so the T4 tier uses SmolLM2-135M (about 5 GB, and no download)."""
    return {
        "01": {"corpus": _GPU_CORPUS, "questions": _GPU_CORPUS, "dense_encoder": "e5-base-v2", "topk": TOPK,
               "recall_limit": 1000},
        "02": {"model": _NB02_POLICY, "quantization": "4bit", "corpus": _GPU_CORPUS, "questions": _GPU_CORPUS,
               "n_questions": 16, "max_turns": 2, "max_new_tokens": tokens},
        "03": {"model": loss_model},
        # the policy's learning rate in 03b's PPO steps, which train the whole model: SmolLM2-135M's critic diverged at
        # tiny-qwen2's 1e-3 (value loss 1.74 -> 118 -> 10.7) and learned at 1e-5 (0.21 -> 0.15, with the head's start
        # scaled to the model's width), on a CPU, 2026-12-07; Qwen2.5-0.5B's not measured (no hub here)
        "03b": {"model": loss_model, "lr": 1e-5},
        # lesson 04 forks its run at resume_at, so it must be a step with a checkpoint: the config saves every 10
        "04": {"config": "qwen2.5-3b-hotpotqa", "overrides": [f"max_steps={steps04}", f"max_new_tokens={tokens}"],
               "resume_at": 10},
        "05": {"config": "qwen2.5-3b-hotpotqa", "overrides": [f"max_steps={steps05}", f"max_new_tokens={tokens}"],
               "eval_sets": [_GPU_CORPUS], "eval_limit": eval_limit},
    }


# Lesson 04 on a CPU: the demo's recipe (configs/world-cpu.yaml) on the synthetic world's single-hop questions,
# for as many steps as keep the whole lesson under 10 minutes on 2 cores (reference/measured.json: 9.4): enough for
# held-out EM to rise (the lesson prints it).
_WORLD_SINGLE_HOP = "world:seed=0,people=240,two_hop_share=0"
_CPU_TRAIN = ["questions=" + _WORLD_SINGLE_HOP, "corpus=" + _WORLD_SINGLE_HOP, "max_steps=6", "eval_size=16"]
# Lesson 05 without lesson 04's run: the same recipe and questions, two short runs (mask on, off). Too few steps to
# learn, but the untrained policy already answers about a third right, so rewards, groups and the table are not all 0
# (a generic prompt on FanOutQA with 32 tokens a turn, the fallback before, rewarded nothing at all).
_CPU_SHORT_RUN = _CPU_TRAIN[:2] + ["max_steps=2", "prompts_per_step=2", "group_size=4", "eval_size=4"]
_CPU_LESSONS = {
    "01": {"corpus": "wiki-vital", "questions": "fanoutqa", "dense_encoder": "minilm", "topk": TOPK,
           "recall_limit": None},
    "02": {"model": "smollm2-135m-instruct", "quantization": None, "corpus": "wiki-vital", "questions": "fanoutqa",
           "n_questions": 6, "max_turns": 2, "max_new_tokens": 48},
    "03": {"model": "tiny-qwen2"},
    "03b": {"model": "tiny-qwen2", "lr": 1e-3},  # a random 64-wide model: a real one wants 1e-5 (the GPU tiers')
    "04": {"config": "world-cpu", "overrides": _CPU_TRAIN, "resume_at": 4},
    # lesson 05 looks at lesson 04's run when there is one; else it trains two short runs (mask on, off)
    "05": {"config": "world-cpu", "overrides": _CPU_SHORT_RUN, "eval_sets": ["held-out"], "eval_limit": 16},
}


@dataclass(frozen=True)
class GPUSpeed:
    """What the time estimates assume of a GPU (spec-sheet figures; the speeds derive from the T4's, see below)."""

    bandwidth_gbs: float  # memory bandwidth, GB/s: a decode step's memory part
    fp16_tflops: float  # dense fp16/bf16 tensor-core peak: the update is compute-bound


# The update: 8 FLOPs a parameter a token (forward, backward, recomputed forward under checkpointing) at a third of
# the tensor-core peak, scaled across GPUs by peak FLOPs. An H200 reached 0.08 of its peak (docs/gpu.md), likely
# a bound from below: the same matrices are small for a GPU that big.
UPDATE_EFFICIENCY = 1 / 3
# A 4-bit decode step of a 3B model has two parts (docs/gpu.md). The host's: Python and the kernel launches of 36
# layers (each with 7 quantised projections and their LoRA adapters), the same on any GPU, so it scales with layers
# only. It was measured on an H200: 0.110 s a step of 16 rows, less that GPU's memory part (1 ms). The memory part:
# the 1.6 GB of packed weights read, then written and read again dequantised (~4.6 GB in all) at the GPU's bandwidth.
DECODE_HOST_S = 0.109
DECODE_GB = 4.6
SPEEDS = {"t4": GPUSpeed(320, 65), "l4": GPUSpeed(300, 121), "a100": GPUSpeed(1555, 312)}
T4_DECODE_STEP_S = DECODE_HOST_S + DECODE_GB / SPEEDS["t4"].bandwidth_gbs  # 0.123 s (0.08 s before it was measured)


@dataclass(frozen=True)
class Tier:
    name: str
    what: str
    compute_dtype: str  # float32 | float16 | bfloat16
    lessons: dict[str, dict[str, Any]] = field(repr=False)
    chosen_by: str = ""  # how pick_tier chose it: a parameter, the environment, or the device found

    def settings(self, lesson: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The lesson's settings on this tier, with a notebook's `SETTINGS` overrides (only keys the tier has). An
        `overrides` list (`--set` lines) is added after the tier's own, so `["max_steps=10"]` changes the steps and
        keeps the tier's questions and limits (later lines win)."""
        own = json.loads(json.dumps(self.lessons[_lesson_key(lesson)]))  # a copy
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(own))
        if unknown:
            raise ValueError(f"SETTINGS: lesson {lesson} has no setting {unknown[0]!r}{did_you_mean(unknown[0], own)}; "
                             f"its settings: {', '.join(own)}")
        if "overrides" in overrides:
            overrides["overrides"] = own["overrides"] + list(overrides["overrides"])
        return {**own, **overrides}

    @property
    def gpu(self) -> bool:
        return self.name != "cpu"


TIERS = {
    "cpu": Tier("cpu", "a laptop or CI, offline", "float32", _CPU_LESSONS),
    # Each GPU tier's steps keep lesson 04 near an hour and 05 near half an hour by its estimate. A decode step is
    # mostly the host's time (DECODE_HOST_S), so a bigger GPU runs one barely faster: the A100 tier's 200 steps of 300
    # tokens, sized when decoding was thought bandwidth-bound, would take about 6 hours.
    "t4": Tier("t4", "a GPU up to 16 GB without bf16 (Colab's free T4)", "float16",
               _gpu_lessons(steps04=36, steps05=7, tokens=160, eval_limit=50, loss_model="smollm2-135m-instruct")),
    "l4": Tier("l4", "an Ampere+ GPU under 40 GB (L4, A10G, RTX 4090)", "bfloat16",
               _gpu_lessons(steps04=38, steps05=8, tokens=200, eval_limit=100)),
    "a100": Tier("a100", "an Ampere+ GPU with 40 GB or more (A100, H100)", "bfloat16",
                 _gpu_lessons(steps04=46, steps05=9, tokens=200, eval_limit=200)),
}


def lesson_id(notebook: str | os.PathLike) -> str:
    """A lesson's id from its notebook's name: "03b" for notebooks/03b_ppo_value_head.ipynb."""
    return os.path.basename(str(notebook)).split("_", 1)[0]


def _lesson_key(lesson: str | int) -> str:
    m = re.fullmatch(r"(\d+)([a-z]?)", lesson_id(lesson))  # 3, "3", "03", "03_masked_grpo_step.ipynb" -> "03"
    key = f"{int(m[1]):02d}{m[2]}" if m else str(lesson)
    if key not in _CPU_LESSONS:
        raise ValueError(f"no lesson {lesson!r}: lessons are {', '.join(_CPU_LESSONS)}")
    return key


# --------------------------------------------------------------------------- choosing one


def detect_tier(device: int = 0) -> str:
    """The tier of this machine's GPU `device`, or `cpu` without one."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    props = torch.cuda.get_device_properties(device)
    if (props.major, props.minor) < (8, 0):
        return "t4"  # no native bf16: fp16 compute, and the smallest GPU settings
    return "a100" if props.total_memory >= 39 * 2**30 else "l4"


def pick_tier(name: str | None = None) -> Tier:
    """`name`, else $SEARCHR1_LITE_TIER, else cpu when $SEARCHR1_LITE_SMALL is set, else the device's tier."""
    if name:
        how = "set by the TIER parameter"
    elif os.environ.get("SEARCHR1_LITE_TIER"):
        name, how = os.environ["SEARCHR1_LITE_TIER"], "set by $SEARCHR1_LITE_TIER"
    elif os.environ.get("SEARCHR1_LITE_SMALL", "").strip().lower() not in ("", "0", "false", "no"):
        name, how = "cpu", "set by $SEARCHR1_LITE_SMALL"
    else:
        name, how = detect_tier(), f"chosen from the device: {device_name()}"
    if name.lower() not in TIERS:
        raise ValueError(f"unknown tier {name!r}: choose one of {', '.join(TIERS)} (or None to detect the device)")
    return dataclasses.replace(TIERS[name.lower()], chosen_by=how)


def device_name(device: int = 0) -> str:
    """'Tesla T4, 15.6 GB, compute capability 7.5', or 'no GPU'."""
    import torch

    if not torch.cuda.is_available():
        return "no GPU"
    p = torch.cuda.get_device_properties(device)
    return f"{p.name}, {p.total_memory / 2**30:.1f} GB, compute capability {p.major}.{p.minor}"


# --------------------------------------------------------------------------- what it costs


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    measured: bool
    how: str  # an estimate's arithmetic, or where and when it was measured

    def __str__(self) -> str:
        return f"{self.value:,.1f} {self.unit} ({'measured' if self.measured else 'estimated'}: {self.how})"


@dataclass(frozen=True)
class ModelShape:
    """What the estimates need of a model (its config.json)."""

    params: float
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    vocab: int


QWEN25_3B = ModelShape(3.09e9, 36, 2048, 2, 128, 151936)
QWEN25_05B = ModelShape(0.49e9, 24, 896, 2, 64, 151936)
SMOLLM2_135M = ModelShape(0.135e9, 30, 576, 3, 64, 49152)
_SHAPES = {"Qwen/Qwen2.5-0.5B-Instruct": QWEN25_05B, "smollm2-135m-instruct": SMOLLM2_135M}


def estimate_memory(shape: ModelShape, trajectories: int, seq_tokens: int, micro_batch: int, lora_r: int = 16,
                    train: bool = True) -> Figure:
    """Peak GPU memory of a 4-bit policy: weights + LoRA and Adam + KV cache + the update's activations + logits."""
    embed = shape.vocab * shape.hidden  # the embedding stays fp16; the linear layers go to NF4 (~0.53 B a param)
    weights = embed * 2 + (shape.params - embed) * 0.53
    lora = 7 * shape.layers * lora_r * 2 * shape.hidden * 16 if train else 0  # 7 projections; fp32 w+grad+Adam
    kv = trajectories * seq_tokens * shape.layers * 2 * shape.kv_heads * shape.head_dim * 2
    rows = micro_batch * seq_tokens
    acts = rows * shape.layers * shape.hidden * 2 + rows * shape.hidden * 4 * 2 * 8 if train else 0  # checkpoints
    # fp32 logits, their log-softmax and its gradient, 512 tokens at a time (grpo.token_logprobs); generation keeps
    # the last position's only
    logits = min(rows, 512) * shape.vocab * 4 * 3 if train else trajectories * shape.vocab * 4
    context = 0.8 * GB  # CUDA context, cuBLAS workspace, allocator slack
    return _memory_figure({"weights": weights, "LoRA+Adam": lora, "KV cache": kv, "activations": acts,
                           "logits": logits, "CUDA context": context})


def _memory_figure(parts: dict[str, float]) -> Figure:
    """An estimate in GB that shows its arithmetic: the parts (bytes) that are not 0, and their sum."""
    how = " + ".join(f"{k} {v / GB:.1f}" for k, v in parts.items() if v) + " GB"
    return Figure(sum(parts.values()) / GB, "GB", False, how)


def estimate_full_memory(shape: ModelShape, rows: int, seq_tokens: int, logit_tokens: int,
                         frozen_copies: int = 0) -> Figure:
    """Peak GPU memory of a lesson that trains every weight in float32 with AdamW (03, 03b): weights, gradients and
    Adam's two moments (16 B a param), frozen copies (lesson 03's reference policy, 4 B a param), the activations
    the backward keeps for `rows` x `seq_tokens` (14 floats a token, a layer and a hidden unit: fitted to lesson
    03's peak RAM with SmolLM2-135M on a CPU, 5.8 GB), and float32 logits, log-softmax and gradient."""
    return _memory_figure({"weights+grads+Adam": shape.params * 16, "frozen copy": shape.params * 4 * frozen_copies,
                           "activations": rows * seq_tokens * shape.layers * shape.hidden * 14 * 4,
                           "logits": logit_tokens * shape.vocab * 4 * 3, "CUDA context": 0.8 * GB})


def decode_step_s(speed: GPUSpeed, shape: ModelShape) -> float:
    """One decode step of a 4-bit `shape` on a GPU of `speed`: the host's part (per layer) + the memory part."""
    return (DECODE_HOST_S * shape.layers / QWEN25_3B.layers
            + DECODE_GB * shape.params / QWEN25_3B.params / speed.bandwidth_gbs)


def estimate_seconds(tier: str, shape: ModelShape, decode_steps: int, update_tokens: int, fixed_s: float = 0.0,
                     what: str = "") -> Figure:
    """decode steps x step time (`decode_step_s`) + update tokens x 8 x params / effective FLOPs."""
    speed = SPEEDS[tier]
    step_s = decode_step_s(speed, shape)
    flops = speed.fp16_tflops * 1e12 * UPDATE_EFFICIENCY
    decode = decode_steps * step_s
    update = update_tokens * 8 * shape.params / flops
    total = decode + update + fixed_s
    how = (f"{decode_steps:,} decode steps x {step_s:.3f} s + {update_tokens:,} tokens x 8 x {shape.params / 1e9:.1f}B "
           f"/ {flops / 1e12:.0f} TFLOP/s" + (f" + {fixed_s / 60:.0f} min {what}" if fixed_s else ""))
    return Figure(total / 60, "min", False, how)


def _train_work(s: dict[str, Any]) -> dict[str, int]:
    """What a lesson's training run does, from its config: decode steps, update tokens, rows and their length."""
    from .config import TrainConfig

    cfg = TrainConfig.load(s["config"], s["overrides"])
    r, o = cfg.rollout, cfg.optim
    seq = 400 + (r.max_turns + 1) * r.max_new_tokens + r.max_turns * r.max_obs_tokens  # the prompt: ~400 tokens
    n = o.prompts_per_step * o.group_size
    return {"decode": o.max_steps * (r.max_turns + 1) * r.max_new_tokens, "tokens": o.max_steps * n * seq,
            "rows": n, "seq": seq, "micro_batch": cfg.grpo.micro_batch_size}


def estimate(tier: Tier, lesson: str) -> dict[str, Figure]:
    """Time and peak memory of a lesson on a GPU tier, estimated from its settings (see the module docstring)."""
    key, s = _lesson_key(lesson), tier.settings(lesson)
    load = 3 * 60  # download and quantise a 3B model in Colab
    if key == "01":  # e5-base (110M) in fp16 over ~134k paragraphs of ~130 tokens: 2 x 110M x 134k x 130 FLOPs
        speed = SPEEDS[tier.name].fp16_tflops * 1e12 * UPDATE_EFFICIENCY
        encode = 2 * 110e6 * 134_000 * 130 / speed
        return {"time": Figure(encode / 60 + 3, "min", False, f"2 x 110M params x 134k passages x 130 tokens / "
                               f"{speed / 1e12:.0f} TFLOP/s + 3 min download, corpus and BM25"),
                "memory": Figure(1.5, "GB", False, "e5-base fp16 0.2 + a batch of 64 passages 0.5 + CUDA context 0.8")}
    if key == "02":
        n, turns, tokens = 2 * s["n_questions"], s["max_turns"] + 1, s["max_new_tokens"]
        return {"time": estimate_seconds(tier.name, QWEN25_3B, 2 * turns * tokens, 0, load, "load"),
                "memory": estimate_memory(QWEN25_3B, n // 2, 400 + turns * (tokens + 400), 1, train=False)}
    if key in ("03", "03b"):  # 03: the whole batch's logits at once (its gradient figure) and a reference copy
        shape, offline = _SHAPES[s["model"]], s["model"] in OFFLINE_PRESETS  # shipped by pip: no download
        memory = (estimate_full_memory(shape, 4, 300, 4 * 300, frozen_copies=1) if key == "03"
                  else estimate_full_memory(shape, 2, 240, 512))  # 03b: micro-batches of 2, logits 512 at a time
        return {"time": Figure(1 if offline else 2, "min", False, ("" if offline else "download 1 GB, ")
                               + "a few forward/backward passes of 4 x 300 tokens"), "memory": memory}
    w, runs = _train_work(s), 2 if key == "05" else 1  # lesson 05 trains two runs (mask on, off), then evaluates
    extra = load + (4 * 60 if runs == 2 else 0)
    time = estimate_seconds(tier.name, QWEN25_3B, runs * w["decode"], runs * w["tokens"], extra,
                            "load" + (" and evaluation" if runs == 2 else ""))
    return {"time": time, "memory": estimate_memory(QWEN25_3B, w["rows"], w["seq"], w["micro_batch"])}


def measured(tier: Tier, lesson: str) -> dict[str, Figure]:
    """Figures measured for this tier and lesson (searchr1_lite/reference/measured.json), where there are any."""
    path = resources.files("searchr1_lite") / "reference" / "measured.json"
    rows = json.loads(path.read_text()) if path.is_file() else {}
    row = rows.get(tier.name, {}).get(_lesson_key(lesson))
    if not row:
        return {}
    where = f"{row['machine']}, {row['date']}"
    return {"time": Figure(row["seconds"] / 60, "min", True, where),
            "memory": Figure(row["peak_gb"], "GB" + (" RAM" if tier.name == "cpu" else ""), True, where)}


def expected(tier: Tier, lesson: str) -> dict[str, Figure]:
    """Measured figures where they exist, else estimates (GPU tiers); the CPU tier is only ever measured."""
    got = measured(tier, lesson)
    if not got and tier.gpu:
        got = estimate(tier, lesson)
    return got


def describe(tier: Tier, lesson: str, overrides: dict[str, Any] | None = None) -> str:
    """What a lesson prints at its top: the tier, its settings, its expected time and peak memory."""
    lines = [f"tier {tier.name} ({tier.chosen_by or 'as given'}): {tier.what}; compute {tier.compute_dtype}"]
    lines += [f"  {k} = {v!r}" + ("   (SETTINGS)" if k in (overrides or {}) else "")
              for k, v in tier.settings(lesson, overrides).items()]
    if overrides:
        lines.append("  (the figures below are for the tier's own settings, not the SETTINGS overrides)")
    figures = expected(tier, lesson)
    if not figures:
        lines.append("  time and memory: not measured yet on this tier")
    for k, fig in figures.items():
        lines.append(f"  expected {k}: {fig}")
    return "\n".join(lines)
