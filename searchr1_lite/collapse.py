"""Collapse checks: five signs, read from a run's metrics rows, that training has gone wrong.

Collapse is the most frequent complaint about Search-R1 training (the authors' issues, #88 among them: GRPO's
reward falls to 0 after some hundreds of steps). `train()` runs these checks after every step; a check that starts
firing writes a warning, and the row's `collapse` field, naming the last good checkpoint.
The demo's report lists them for each run. Each is a pure function of the rows, so the report recomputes them from
metrics.jsonl.

    reward_fell         the sampled reward (mean of 5 steps) has fallen to half its best, and by at least 0.2
    entropy_spike       the policy's token entropy is over twice the median of the 10 steps before (and 0.1 above it)
    non_finite          a loss, gradient norm, reward, entropy, KL or value loss is NaN or infinite, or the
                        update was skipped
    valid_actions_fell  the share of valid actions (mean of 3 steps) is 0.2 below its best
    hop_em_fell         the sampled EM on the questions of one hop count (mean of 5 steps) has fallen to half its
                        best, and by at least 0.2: the reward over all questions can rise while two-hop EM falls to 0
                        (docs/multi-hop/, sections 4, 7, 8), and reward_fell misses it

Which checkpoint is good: row s of metrics.jsonl is sampled from the weights after s-1 updates, saved as
checkpoint-(s-1). A sign seen in row s therefore indicts checkpoint-(s-1); the last good weights are those that wrote
the last healthy row (for reward_fell, the end of the best 5 steps).
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .checkpoint import saved_steps

REWARD_WINDOW, REWARD_DROP = 5, 0.2  # a smaller fall is noise at 4 questions x 8 samples a step
ENTROPY_HISTORY, ENTROPY_RATIO, ENTROPY_MIN_JUMP = 10, 2.0, 0.1
VALID_WINDOW, VALID_DROP = 3, 0.2
FINITE_KEYS = ("loss", "grad_norm", "reward_mean", "entropy", "kl", "value_loss")

CHECKS = {
    "reward_fell": f"the sampled reward (mean of {REWARD_WINDOW} steps) fell to half its best, and by at least "
                   f"{REWARD_DROP}",
    "entropy_spike": f"token entropy over {ENTROPY_RATIO:g}x the median of the {ENTROPY_HISTORY} steps before "
                     f"(and {ENTROPY_MIN_JUMP} above it)",
    "non_finite": "a loss, gradient norm, reward, entropy, KL or value loss was NaN or infinite, or the update "
                  "was skipped",
    "valid_actions_fell": f"the share of valid actions (mean of {VALID_WINDOW} steps) fell {VALID_DROP} below its best",
    "hop_em_fell": f"the sampled EM on questions of one hop count (mean of {REWARD_WINDOW} steps that had them) fell "
                   f"to half its best, and by at least {REWARD_DROP}",
}
HOP_EM = re.compile(r"em_(\d+)hop")  # train.py's per-hop-count keys: em_1hop, em_2hop


@dataclass(frozen=True)
class Finding:
    """A check that started firing at row `step`; `good_step` is the last row before it that looked healthy."""

    check: str
    step: int
    good_step: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "step": self.step, "good_step": self.good_step, "detail": self.detail}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _means(rows: Sequence[dict], key: str, window: int) -> list[tuple[int, float]]:
    """(step, trailing mean over `window` rows) for each row that has `key` and a full window behind it."""
    values = [(r["step"], r[key]) for r in rows if _finite(r.get(key))]
    return [(values[i][0], sum(v for _, v in values[i - window + 1 : i + 1]) / window)
            for i in range(window - 1, len(values))]


def _fell_to_half(rows: Sequence[dict], key: str) -> tuple[float, int, float] | None:
    """(best, its step, now) when the 5-step mean of `key`, at the last row, has fallen to half its best and by at
    least REWARD_DROP."""
    means = _means(rows, key, REWARD_WINDOW)
    if len(means) < 2 or means[-1][0] != rows[-1]["step"]:
        return None
    peak_step, peak = max(reversed(means), key=lambda m: m[1])  # the latest of equal peaks
    now = means[-1][1]
    return (peak, peak_step, now) if peak - now >= REWARD_DROP and now <= peak / 2 else None


def _reward_fell(rows: Sequence[dict]) -> tuple[str, int] | None:
    if fell := _fell_to_half(rows, "reward_mean"):
        peak, peak_step, now = fell
        return f"reward (mean of {REWARD_WINDOW} steps) {peak:.2f} by step {peak_step}, now {now:.2f}", peak_step
    return None


def _hop_em_fell(rows: Sequence[dict]) -> tuple[str, int] | None:
    """Each hop count whose EM fell, in one finding; the last good step is before the earliest of their peaks. A
    step whose questions had none of a hop count has no such key: each is read from the rows that have it."""
    keys = {key: hops.group(1) for row in rows for key in row if (hops := HOP_EM.fullmatch(key))}
    falls = [(hops, fell) for key, hops in sorted(keys.items())
             if (fell := _fell_to_half([r for r in rows if key in r], key))]
    if not falls:
        return None
    return ("; ".join(f"{hops}-hop EM (mean of {REWARD_WINDOW} steps with {hops}-hop questions) {peak:.2f} by step "
                      f"{peak_step}, now {now:.2f}" for hops, (peak, peak_step, now) in falls),
            min(peak_step for _, (_, peak_step, _) in falls))


def _entropy_spike(rows: Sequence[dict]) -> tuple[str, int] | None:
    now = rows[-1].get("entropy")
    before = [r["entropy"] for r in rows[-1 - ENTROPY_HISTORY : -1] if _finite(r.get("entropy"))]
    if not _finite(now) or len(before) < 3:
        return None
    median = statistics.median(before)
    if now > ENTROPY_RATIO * median and now - median > ENTROPY_MIN_JUMP:
        return f"entropy {now:.3f} against a median of {median:.3f} over the {len(before)} steps before", \
            rows[-2]["step"]
    return None


def _non_finite(rows: Sequence[dict]) -> tuple[str, int] | None:
    row = rows[-1]
    bad = [k for k in FINITE_KEYS if isinstance(row.get(k), float) and not math.isfinite(row[k])]
    if bad or row.get("skipped"):
        what = ", ".join(f"{k}={row[k]}" for k in bad) or "the update was skipped"
        return what, (rows[-2]["step"] if len(rows) > 1 else 0)
    return None


def _valid_actions_fell(rows: Sequence[dict]) -> tuple[str, int] | None:
    means = _means(rows, "valid_action_rate", VALID_WINDOW)
    if not means or means[-1][0] != rows[-1]["step"]:
        return None
    best_step, best = max(reversed(means), key=lambda m: m[1])
    now = means[-1][1]
    if best - now >= VALID_DROP:
        return f"valid actions (mean of {VALID_WINDOW} steps) {best:.2f} at step {best_step}, now {now:.2f}", best_step
    return None


_RULES = {"reward_fell": _reward_fell, "entropy_spike": _entropy_spike, "non_finite": _non_finite,
          "valid_actions_fell": _valid_actions_fell, "hop_em_fell": _hop_em_fell}


def _start_firing(rows: Sequence[dict], was: dict[str, bool]) -> tuple[list[Finding], dict[str, bool]]:
    """Findings for the checks true at the last row that were not at the row before (`was`: one finding an
    episode), and which checks are true at the last row."""
    findings, now = [], {}
    for name, rule in _RULES.items():
        hit = rule(rows)
        now[name] = hit is not None
        if hit and not was[name]:
            findings.append(Finding(name, rows[-1]["step"], hit[1], hit[0]))
    return findings, now


def fired_at(rows: Sequence[dict]) -> list[Finding]:
    """The checks that start firing at the last row (what train() asks after each step)."""
    return _start_firing(rows, {name: len(rows) > 1 and rule(rows[:-1]) is not None
                                for name, rule in _RULES.items()})[0]


def find_collapse(rows: Sequence[dict]) -> list[Finding]:
    """Every finding over a run's metrics rows, in step order; each rule runs once on each prefix."""
    out, was = [], {name: False for name in _RULES}
    for i in range(1, len(rows) + 1):
        found, was = _start_firing(rows[:i], was)
        out += found
    return out


def last_good_checkpoint(run: str | Path, finding: Finding) -> str:
    """The newest saved checkpoint whose weights wrote a healthy row (row g comes from checkpoint-(g-1))."""
    limit = finding.good_step - 1
    good = [s for s in saved_steps(run) if s <= limit]
    return f"checkpoint-{max(good)}" if good else "none: the base model, before the first update"


def warning(run: str | Path, finding: Finding) -> str:
    """The line train() logs and writes in the row's `collapse` field."""
    return (f"{finding.check} at step {finding.step} ({CHECKS[finding.check]}): {finding.detail}; "
            f"last good checkpoint: {last_good_checkpoint(run, finding)}")
