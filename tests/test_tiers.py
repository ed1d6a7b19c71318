"""Hardware tiers: chosen from the device, overridable, one place for each lesson's settings, honest figures."""

import types

import pytest
import torch

from searchr1_lite import tiers
from searchr1_lite.config import TrainConfig
from searchr1_lite.tiers import TIERS, describe, detect_tier, estimate, pick_tier

GPUS = {  # name: (compute capability, memory in GiB, the tier it gets)
    "Tesla T4": ((7, 5), 15.0, "t4"),
    "Tesla V100-SXM2-16GB": ((7, 0), 16.0, "t4"),
    "NVIDIA L4": ((8, 9), 22.5, "l4"),
    "NVIDIA A100-SXM4-40GB": ((8, 0), 39.4, "a100"),
    "NVIDIA H200": ((9, 0), 139.8, "a100"),
}


def _fake_gpu(monkeypatch, name):
    (major, minor), gib, _ = GPUS[name]
    props = types.SimpleNamespace(name=name, major=major, minor=minor, total_memory=int(gib * 2**30))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=0: props)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=0: (major, minor))


@pytest.mark.parametrize("name", GPUS)
def test_the_tier_follows_the_device(monkeypatch, name):
    from searchr1_lite.models import compute_dtype

    monkeypatch.delenv("SEARCHR1_LITE_TIER", raising=False)
    monkeypatch.delenv("SEARCHR1_LITE_SMALL", raising=False)
    _fake_gpu(monkeypatch, name)
    tier = pick_tier()
    assert tier.name == GPUS[name][2] and name in tier.chosen_by
    # the tier's compute dtype is the one the 4-bit loader picks on that device: fp16 without native bf16
    assert getattr(torch, tier.compute_dtype) == compute_dtype("cuda:0")


def test_no_gpu_is_the_cpu_tier_and_overrides_win(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("SEARCHR1_LITE_SMALL", raising=False)
    monkeypatch.delenv("SEARCHR1_LITE_TIER", raising=False)
    assert detect_tier() == "cpu" and pick_tier().name == "cpu"
    monkeypatch.setenv("SEARCHR1_LITE_TIER", "t4")
    assert pick_tier().name == "t4" and "SEARCHR1_LITE_TIER" in pick_tier().chosen_by
    assert pick_tier("a100").name == "a100"  # the notebook's TIER parameter beats the environment
    _fake_gpu(monkeypatch, "Tesla T4")
    monkeypatch.delenv("SEARCHR1_LITE_TIER")
    monkeypatch.setenv("SEARCHR1_LITE_SMALL", "1")  # what `make test` sets: offline CPU settings even on a GPU
    assert pick_tier().name == "cpu"
    with pytest.raises(ValueError, match="unknown tier 'h100': choose one of cpu, t4, l4, a100"):
        pick_tier("h100")


def test_settings_overrides_are_checked():
    tier = TIERS["cpu"]
    assert tier.settings("01", {"topk": 5})["topk"] == 5 and tier.settings("01")["topk"] == 3
    with pytest.raises(ValueError, match=r"no setting 'top_k' \(did you mean 'topk'\?\); its settings: corpus"):
        tier.settings("01", {"top_k": 5})
    with pytest.raises(ValueError, match="lesson 01 has no setting 'passages'; its settings: corpus"):  # nothing close
        tier.settings("01", {"passages": 5})
    with pytest.raises(ValueError, match="no lesson '07'"):
        tier.settings("07")


@pytest.mark.parametrize("tier", list(TIERS))
def test_an_overrides_setting_adds_to_the_tiers_own_lines(tier):
    """Lesson 04's example, {"overrides": ["max_steps=10"]}, used to replace the tier's lines: the CPU tier then
    trained the config's half two-hop questions instead of the lesson's single-hop ones, and a GPU tier lost its
    token limit."""
    own = TIERS[tier].settings("04")
    changed = TIERS[tier].settings("04", {"overrides": ["max_steps=10"]})
    assert changed["overrides"] == own["overrides"] + ["max_steps=10"]
    cfg, base = (TrainConfig.load(s["config"], s["overrides"]) for s in (changed, own))
    assert cfg.optim.max_steps == 10 and base.optim.max_steps != 10
    assert (cfg.data, cfg.rollout) == (base.data, base.rollout)


@pytest.mark.parametrize("tier", list(TIERS))
def test_every_lessons_training_settings_load(tier):
    for lesson in ("04", "05"):
        s = TIERS[tier].settings(lesson)
        TrainConfig.load(s["config"], s["overrides"])


@pytest.mark.parametrize("tier", list(TIERS))
def test_lesson_04_keeps_a_checkpoint_where_it_resumes(tier):
    """Lesson 04 forks its run at `resume_at` and replays the step after it: the run must save a checkpoint there
    (the GPU config saves every 10 steps, and the t4 tier forked at 18: FileNotFoundError) and go on past it."""
    s = TIERS[tier].settings("04")
    cfg = TrainConfig.load(s["config"], s["overrides"])
    assert s["resume_at"] % cfg.save_every == 0 and 0 < s["resume_at"] < cfg.optim.max_steps


def test_the_t4_tier_fits_a_free_colab_session_by_its_own_estimate():
    """The goals: lesson 04 in 60 min, 05 in 30, at most 13 GB. Raising steps or tokens past them fails here."""
    t4 = TIERS["t4"]
    budgets = {"04": 60, "05": 30}
    for lesson in TIERS["cpu"].lessons:  # every lesson, 03b included
        figures = estimate(t4, lesson)
        assert figures["memory"].value <= 13 and not figures["memory"].measured
        assert figures["time"].value <= budgets.get(lesson, 15)
    s = t4.settings("04")
    cfg = TrainConfig.load(s["config"], s["overrides"])
    assert cfg.policy.quantization == "4bit" and cfg.data.corpus == cfg.data.questions == "hotpotqa-distractor"


def test_lessons_03_train_the_whole_model_so_their_estimate_counts_adam_and_the_reference():
    """16 B a parameter (float32 weights, gradients, Adam's two moments) and lesson 03's frozen reference: for
    Qwen2.5-0.5B that is more than a T4 leaves (14.2 GB), so the T4 tier trains SmolLM2-135M there."""
    l4_03, l4_03b = estimate(TIERS["l4"], "03")["memory"], estimate(TIERS["l4"], "03b")["memory"]
    assert "weights+grads+Adam 7.8" in l4_03.how and "frozen copy 2.0" in l4_03.how
    assert "frozen copy" not in l4_03b.how and l4_03.value > 14 > l4_03b.value
    parts = [float(x.split()[-1]) for x in l4_03.how.removesuffix(" GB").split(" + ")]
    assert abs(sum(parts) - l4_03.value) < 0.1 * len(parts)
    assert TIERS["t4"].settings("03")["model"] == TIERS["t4"].settings("03b")["model"] == "smollm2-135m-instruct"


def test_an_estimate_shows_its_arithmetic():
    mem = tiers.estimate_memory(tiers.QWEN25_3B, trajectories=16, seq_tokens=1000, micro_batch=2)
    parts = [float(x.split()[-1]) for x in mem.how.removesuffix(" GB").split(" + ")]
    assert abs(sum(parts) - mem.value) < 0.1 * len(parts)  # the parts add up to the total (each rounded)
    # the KV cache of Qwen2.5-3B: 36 layers x 2 (K, V) x 2 heads x 128 x 2 bytes = 36,864 bytes a token
    assert "KV cache 0.6" in mem.how
    t = tiers.estimate_seconds("t4", tiers.QWEN25_3B, decode_steps=1000, update_tokens=0)
    assert abs(t.value - 1000 * tiers.T4_DECODE_STEP_S / 60) < 1e-9
    # a decode step is the host's part, the same on any GPU, plus the memory part at the GPU's bandwidth (docs/gpu.md):
    # an A100 step is not the T4's scaled by bandwidth
    a100 = tiers.estimate_seconds("a100", tiers.QWEN25_3B, decode_steps=1000, update_tokens=0)
    assert a100.value * 60 / 1000 == pytest.approx(tiers.DECODE_HOST_S + tiers.DECODE_GB / 1555)
    text = describe(TIERS["t4"], "04")
    assert "estimated:" in text and "decode steps x" in text and "config = 'qwen2.5-3b-hotpotqa'" in text


def test_the_cpu_tier_prints_measured_figures():
    """The CPU tier is never estimated: its figures come from benchmarks/time_notebooks.py (reference/measured.json)."""
    text = describe(TIERS["cpu"], "01")
    assert "expected time:" in text and "expected memory:" in text and "(measured:" in text
    assert "estimated" not in text and "GB RAM" in text
