"""The collapse checks on metrics rows: each sign fires where it shows, once, and not on healthy runs."""

import json
from pathlib import Path

import pytest

from searchr1_lite.checkpoint import CHECKPOINT_FILES
from searchr1_lite.collapse import CHECKS, Finding, find_collapse, fired_at, last_good_checkpoint, warning

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
    assert [(f.check, f.step, f.good_step) for f in found] == [("reward_fell", 9, 6),  # 5-step mean 0.46 -> 0.20
                                                                ("hop_em_fell", 9, 6)]  # two-hop: 0.28 -> 0.01


def test_two_hop_em_that_falls_while_the_reward_rises_fires_once_naming_its_best_steps():
    """The trade docs/multi-hop/ shows: the reward over all questions rises as single-hop EM does, while two-hop EM
    rises and falls back. Steps without two-hop questions (no em_2hop key) neither fire nor end the episode."""
    em_2hop = [0.2] * 3 + [0.6] * 5 + [0.0] * 6  # 5-step means over the steps that had two-hop questions
    rows = _rows(reward_mean=[0.3 + 0.04 * i for i in range(16)])[:14]
    for row, em in zip(rows, em_2hop):
        row.update(em_2hop=em, em_1hop=row["reward_mean"])
    rows.insert(10, {**rows[10], "step": None})  # a step with single-hop questions only, after the fall began
    del rows[10]["em_2hop"]
    for step, row in enumerate(rows, 1):
        row["step"] = step
    found = find_collapse(rows)
    # means: 0.44 at step 7, 0.6 at step 8; fell to <= 0.3 and by >= 0.2 at the third 0.0 (step 12: row 11 had none)
    assert [(f.check, f.step, f.good_step) for f in found] == [("hop_em_fell", 12, 8)], found
    assert found[0].detail.startswith("2-hop EM") and "0.60 by step 8" in found[0].detail
    rows_kept_half = [{**r, "em_2hop": 0.35} if r.get("em_2hop") == 0.0 else r for r in rows]
    assert find_collapse(rows_kept_half) == []  # 0.6 -> 0.35: kept more than half its best


def test_two_hop_counts_that_fall_together_make_one_finding_before_both_peaks():
    rows = _rows(em_1hop=[0.9] * 6 + [0.8] + [0.0] * 5,  # 5-step means: best 0.9 at step 6, 0.34 at step 10
                 em_2hop=[0.0] * 2 + [1.0] * 5 + [0.0] * 5)  # best 1.0 at step 7, 0.4 at step 10
    found = find_collapse(rows)
    assert [(f.check, f.step, f.good_step) for f in found] == [("hop_em_fell", 10, 6)], found
    assert "1-hop EM" in found[0].detail and "2-hop EM" in found[0].detail


@pytest.mark.parametrize("metrics, step, good_step", [
    ("docs/multi-hop/paired.metrics.jsonl", 13, 8),  # held-out two-hop EM: checkpoint-8 0.531, checkpoint-16 0.000
    ("docs/demo-cpu-long/phase2.metrics.jsonl", 22, 17)])  # checkpoint-16 0.625, -22 0.594, -26 0.219, -30 0.000
def test_real_runs_that_unlearned_the_second_search_fire_hop_em_fell(metrics, step, good_step):
    """Runs whose two-hop EM fell to 0 while the reward held or rose (docs/multi-hop/ sections 4 and 7): the reward
    check did not fire on them; the two-hop check does, naming steps before the held-out two-hop EM fell."""
    rows = [json.loads(x) for x in (ROOT / metrics).read_text().splitlines()]
    found = find_collapse(rows)
    assert "reward_fell" not in {f.check for f in found}
    assert [(f.step, f.good_step) for f in found if f.check == "hop_em_fell"] == [(step, good_step)]


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
        for name in CHECKPOINT_FILES:
            (tmp_path / f"checkpoint-{step}" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f"checkpoint-{step}" / name).touch()
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "checkpoint-8").mkdir()  # empty: not a checkpoint to go back to
    # row 6 was healthy: it was sampled from the weights after 5 updates; checkpoint-4 is the newest saved at or before
    assert last_good_checkpoint(tmp_path, Finding("entropy_spike", 7, 6, "")) == "checkpoint-4"
    assert last_good_checkpoint(tmp_path, Finding("entropy_spike", 8, 7, "")) == "checkpoint-6"
    assert last_good_checkpoint(tmp_path, Finding("entropy_spike", 10, 9, "")) == "checkpoint-6"
    assert last_good_checkpoint(tmp_path, Finding("non_finite", 2, 1, "")).startswith("none: the base model")
    line = warning(tmp_path, Finding("reward_fell", 9, 7, "reward fell"))
    assert line.startswith("reward_fell at step 9 (" + CHECKS["reward_fell"]) and line.endswith("checkpoint-6")


def test_fired_at_after_each_step_fires_once_where_a_check_starts_as_find_collapse():
    """What train() asks after every step: a check fires at the row where it first holds, not again on the rows after
    while it keeps holding (one warning an episode), and again only once it has stopped and started anew."""
    nan = float("nan")
    rows = _rows(entropy=[0.2] * 6 + [0.9, 0.9] + [0.2] * 5,  # a spike held 2 rows
                 loss=[0.1] * 9 + [nan, nan, 0.1, nan])  # two non-finite episodes, the first held 2 rows
    fired = [(f.check, f.step, f.good_step) for i in range(1, len(rows) + 1) for f in fired_at(rows[:i])]
    assert fired == [("entropy_spike", 7, 6), ("non_finite", 10, 9), ("non_finite", 13, 12)]
    assert fired == [(f.check, f.step, f.good_step) for f in find_collapse(rows)]
    assert fired_at(rows[:8]) == [] and fired_at(rows[:11]) == []  # still holding: no second warning
