"""The collapse checks on metrics rows: each sign fires where it shows, once, and not on healthy runs."""

import json
from pathlib import Path

import pytest

from searchr1_lite.collapse import CHECKS, Finding, find_collapse, last_good_checkpoint, warning

ROOT = Path(__file__).resolve().parents[1]


def _rows(**series):
    """Metrics rows from per-metric lists (steps from 1); other metrics at healthy values."""
    n = len(next(iter(series.values())))
    healthy = {"reward_mean": 0.5, "entropy": 0.2, "valid_action_rate": 1.0, "loss": 0.1, "grad_norm": 1.0,
               "skipped": 0}
    return [{"step": i + 1, **healthy, **{k: v[i] for k, v in series.items()}} for i in range(n)]


@pytest.mark.parametrize("metrics", ["searchr1_lite/reference/lesson04.metrics.jsonl",
                                     "docs/demo-cpu-ppo/grpo.metrics.jsonl", "docs/demo-cpu-ppo/ppo.metrics.jsonl"])
def test_real_healthy_runs_fire_nothing(metrics):
    rows = [json.loads(x) for x in (ROOT / metrics).read_text().splitlines()]
    assert find_collapse(rows) == []


def test_a_reward_that_rises_then_falls_back_fires_once_naming_the_peak():
    reward = [0.1] * 5 + [0.6] * 6 + [0.0] * 6  # 5-step means: 0.1 ... 0.6 (steps 10, 11: the later named) ... 0
    found = find_collapse(_rows(reward_mean=reward))
    assert [(f.check, f.good_step) for f in found] == [("reward_fell", 11)]
    assert found[0].step == 14  # the first 5-step mean at or below 0.6 / 2: (0.6 * 2 + 0 * 3) / 5 = 0.24
    assert find_collapse(_rows(reward_mean=[0.1] * 5 + [0.28] * 6 + [0.1] * 6)) == []  # 0.28 -> 0.1: under 0.2
    assert find_collapse(_rows(reward_mean=[0.1] * 5 + [0.6] * 6 + [0.35] * 6)) == []  # kept more than half its best


def test_a_real_run_whose_reward_fell_back_fires_naming_its_best_steps():
    """A phase-2 run (docs/multi-hop/): the two-hop template after single-hop training, learning rate 3e-4. The
    reward rose within 3 steps, then the policy unlearned its second search and the reward fell back."""
    rows = [json.loads(x) for x in (ROOT / "docs/multi-hop/phase2-lr3e-4.metrics.jsonl").read_text().splitlines()]
    found = find_collapse(rows)
    assert [(f.check, f.step, f.good_step) for f in found] == [("reward_fell", 9, 6)]  # 5-step mean 0.46 -> 0.20


def test_an_entropy_spike_fires_and_a_small_entropy_doubling_does_not():
    found = find_collapse(_rows(entropy=[0.2] * 6 + [0.9, 0.9, 0.2]))
    assert [(f.check, f.step, f.good_step) for f in found] == [("entropy_spike", 7, 6)]  # once, though 2 rows high
    assert find_collapse(_rows(entropy=[0.02] * 6 + [0.07])) == []  # 3.5x, but 0.05 nats: a converged policy's noise


def test_nonfinite_values_and_skipped_updates_fire():
    found = find_collapse(_rows(loss=[0.1, 0.1, float("nan"), 0.1, float("inf")]))
    assert [(f.check, f.step, f.good_step) for f in found] == [("non_finite", 3, 2), ("non_finite", 5, 4)]
    assert "loss=nan" in found[0].detail
    assert [f.step for f in find_collapse(_rows(skipped=[0, 1, 1]))] == [2]


def test_valid_actions_that_fall_fire_and_a_dip_does_not():
    found = find_collapse(_rows(valid_action_rate=[1.0] * 4 + [0.6] * 4))
    assert [(f.check, f.step, f.good_step) for f in found] == [("valid_actions_fell", 6, 4)]  # (1 + .6 + .6)/3
    assert find_collapse(_rows(valid_action_rate=[1.0] * 4 + [0.7] + [1.0] * 3)) == []


def test_the_last_good_checkpoint_is_the_newest_saved_before_the_bad_weights(tmp_path):
    for step in (2, 4, 6):  # save_every: 2
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    # row 6 was healthy: it was sampled from the weights after 5 updates; checkpoint-4 is the newest saved at or before
    assert last_good_checkpoint(tmp_path, Finding("entropy_spike", 7, 6, "")) == "checkpoint-4"
    assert last_good_checkpoint(tmp_path, Finding("entropy_spike", 8, 7, "")) == "checkpoint-6"
    assert last_good_checkpoint(tmp_path, Finding("non_finite", 2, 1, "")).startswith("none: the base model")
    line = warning(tmp_path, Finding("reward_fell", 9, 7, "reward fell"))
    assert line.startswith("reward_fell at step 9 (" + CHECKS["reward_fell"]) and line.endswith("checkpoint-6")
