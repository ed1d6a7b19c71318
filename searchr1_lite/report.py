"""The demo's report: tables and goal checks computed from the per-question results a run wrote, and its plots.

Every number in report.md is recomputed here from `eval/*.json` (one row per test question) and the runs'
`metrics.jsonl`; `summary.json` holds the same numbers for programs (and for the test that checks the report).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .checkpoint import read_rows
from .collapse import CHECKS, find_collapse, warning
from .world import QUESTION_TEMPLATES

METHOD_LABELS = {"direct": "Direct (no retrieval)", "rag": "RAG (retrieve once with the question)",
                 "search-untrained": "Search, untrained (same prompt as below)",
                 "search-r1-lite": "Search-R1-lite (trained, masked)",
                 "search-r1-lite-two-hop": "Search-R1-lite, curriculum phase 2 (two-hop)",
                 "search-r1-lite-no-mask": "Search-R1-lite, no mask (ablation)",
                 "search-r1-lite-ppo": "Search-R1-lite, PPO (trained, masked)"}
CRITICS = {"shared": "a value head on the policy's trunk", "separate": "a LoRA model of its own with a value head"}
# the demo's goals (issue 18), each threshold written once: the claims' text and their checks read these
TWO_HOP_EM, TIMES_RAG, SINGLE_HOP_EM, DIRECT_EM = 0.25, 2, 0.9, 0.05
TWO_HOP_SEARCHES, SINGLE_HOP_SEARCHES = 1.5, 1.2  # at least, and at most ("about 1")
EM_CLAIM = f"trained two-hop EM >= {TWO_HOP_EM} and >= {TIMES_RAG}x RAG's, single-hop EM >= {SINGLE_HOP_EM}"
DIRECT_CLAIM = f"Direct EM about 0 (<= {DIRECT_EM})"
SEARCHES_CLAIM = (f"two-hop questions draw >= {TWO_HOP_SEARCHES} searches, single-hop about 1 "
                  f"(<= {SINGLE_HOP_SEARCHES}) (trained, test)")
DEMO_METRICS = ["reward_mean", "em", "em_1hop", "em_2hop", "response_length_mean", "searches_mean", "searches_1hop",
                "searches_2hop", "valid_action_rate", "grad_norm"]


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """EM and searches per question, by kind (single-hop, two-hop) and over all rows."""
    out: dict[str, float] = {"n": len(rows)}
    groups = {"all": rows, **{k: [r for r in rows if r["kind"] == k] for k in sorted({r["kind"] for r in rows})}}
    for name, group in groups.items():
        if group:
            out[f"em_{name}"] = sum(r["em"] for r in group) / len(group)
            out[f"searches_{name}"] = sum(r["searches"] for r in group) / len(group)
            out[f"n_{name}"] = len(group)
    return out


def by_question_type(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """EM, searches per question and count for each of the world's question types (`world.QUESTION_TEMPLATES`'s
    keys), in that order: which questions a policy gets right, not only how many hops they take."""
    out = {}
    for kind in QUESTION_TEMPLATES:
        group = [r for r in rows if r.get("question_type") == kind]
        if group:
            out[kind] = {"em": sum(r["em"] for r in group) / len(group),
                         "searches": sum(r["searches"] for r in group) / len(group), "n": len(group)}
    return out


def _types_table(types: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    kinds = [k for k in QUESTION_TEMPLATES if any(k in t for t in types.values())]
    if not kinds:  # rows written before question types were recorded
        return []
    n = {k: next(t[k]["n"] for t in types.values() if k in t) for k in kinds}
    heads = [f"{QUESTION_TEMPLATES[k][0].format(person='P', work='W')} (n={n[k]})" for k in kinds]
    lines = ["## By question type", "",
             "EM, and searches per question in brackets; each type is named by the first of its wordings. The "
             "single-hop types come first; each two-hop type is a single-hop one and one more search.", "",
             "| method | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(kinds)]
    for name, t in types.items():
        cells = [f"{t[k]['em']:.2f} ({t[k]['searches']:.2f})" if k in t else "" for k in kinds]
        lines.append(f"| {METHOD_LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _window(frame, metric: str, k: int = 5) -> int:
    """How many steps `_trend` averages at each end: k, or fewer in a short run (half its steps, at least 1)."""
    n = int(frame[metric].count())
    return max(1, min(k, n // 2)) if n > 1 else 1


def _trend(frame, metric: str, k: int = 5) -> tuple[float, float]:
    values, k = frame[metric].dropna().tolist(), _window(frame, metric, k)
    return sum(values[:k]) / k, sum(values[-k:]) / k


def _fewer(frame, metric: str) -> str:
    """What the claims' "first 5 steps vs last 5" really compared, where the run was too short for 5."""
    k = _window(frame, metric)
    return "" if k == 5 else f" (a run of {int(frame[metric].count())} steps: the first {k} vs the last {k})"


def _how_far(scores: dict[str, float], hops: str, goal: float) -> str:
    """" (22 of 25 right; >= 0.9 needs 23)": on a few dozen questions a goal is a count of answers, and this says
    how many more it needs (nothing where the summary has no count)."""
    n = scores.get(f"n_{hops}")
    if not n:
        return ""
    right = round(scores.get(f"em_{hops}", 0.0) * n)
    needed = math.ceil(goal * n - 1e-9)  # 0.9 x 25 = 22.5: 23 answers
    return f" ({right} of {n} right" + (f"; >= {goal} needs {needed})" if right < needed else ")")


def goals(summary: dict[str, dict[str, float]], frames: dict,
          collapse: list | None = None) -> list[tuple[str, bool | None, str]]:
    """(goal, met?, the figures) for each of the demo's claims; None = cannot be judged from this run. The trained
    policy is the curriculum's phase 2 when it ran, else the masked run. `collapse`: the collapse findings
    of the runs that trained it (collapse.find_collapse)."""
    out: list[tuple[str, bool | None, str]] = []
    final = "search-r1-lite-two-hop" if "search-r1-lite-two-hop" in summary else "search-r1-lite"
    trained, rag, direct = summary.get(final), summary.get("rag"), summary.get("direct")
    if trained and rag:
        t1, t2, r2 = trained.get("em_single-hop", 0.0), trained.get("em_two-hop", 0.0), rag.get("em_two-hop", 0.0)
        out.append((EM_CLAIM, t2 >= TWO_HOP_EM and t2 >= TIMES_RAG * r2 and t1 >= SINGLE_HOP_EM,
                    f"two-hop {t2:.2f} vs RAG {r2:.2f}; single-hop {t1:.2f}" + _how_far(trained, "single-hop",
                                                                                       SINGLE_HOP_EM)))
        out.append(("trained EM on all questions > RAG's", trained["em_all"] > rag["em_all"],
                    f"{trained['em_all']:.2f} vs {rag['em_all']:.2f}"))
    if direct:
        out.append((DIRECT_CLAIM, direct["em_all"] <= DIRECT_EM, f"{direct['em_all']:.2f}"))
    run, start = frames.get(final), frames.get("search-r1-lite")
    if run is not None and "searches_2hop" in run and run["searches_2hop"].count() >= 2:
        first, last = _trend(run, "searches_2hop")
        if final == "search-r1-lite":
            out.append(("searches per two-hop question rise during training (sampled; first 5 steps vs last 5)",
                        last > first, f"{first:.2f} -> {last:.2f}" + _fewer(run, "searches_2hop")))
        else:  # a curriculum trains in two phases: from phase 1's start to phase 2's end, and phase 2's own trend
            sampled = start is not None and "searches_2hop" in start and start["searches_2hop"].count() > 0
            first_all = _trend(start, "searches_2hop")[0] if sampled else float("nan")  # nan: not met, shown
            out.append(("searches per two-hop question rise during training (sampled; phase 1's first 5 steps vs "
                        "phase 2's last 5)", last > first_all,
                        f"{first_all:.2f} -> {last:.2f}; phase 2 alone (its prompt shows two searches) "
                        f"{first:.2f} -> {last:.2f}"))
    if trained:
        s1, s2 = trained.get("searches_single-hop", 0.0), trained.get("searches_two-hop", 0.0)
        out.append((SEARCHES_CLAIM, s2 >= TWO_HOP_SEARCHES and s1 <= SINGLE_HOP_SEARCHES,  # 1.78 vs 1.72: not "about 1"
                    f"{s2:.2f} vs {s1:.2f}"))
    if collapse is not None and run is not None:
        out.append((f"no collapse: none of the {len(CHECKS)} collapse checks fired (trained runs)", not collapse,
                    "none fired" if not collapse else "; ".join(f"{f.check} at step {f.step}" for f in collapse)))
    return out


def collapse_lines(runs: dict[str, Path]) -> tuple[list[str], dict[str, list]]:
    """The report's collapse section (each check, and for each run whether and where it fired, with the last good
    checkpoint), and the findings by run; recomputed from each run's metrics.jsonl."""
    found = {name: find_collapse(read_rows(run / "metrics.jsonl")) for name, run in runs.items()}
    lines = ["Checked after every training step (searchr1_lite/collapse.py); a check that fires logs a warning and "
             "writes the row's `collapse` field.", "",
             *[f"- `{name}`: {rule}" for name, rule in CHECKS.items()], ""]
    for name, findings in found.items():
        label = METHOD_LABELS.get(name, name)
        if not findings:
            lines.append(f"- {label}: none fired in {runs[name].name}/metrics.jsonl.")
        for f in findings:
            lines.append(f"- {label}: **{warning(runs[name], f)}**")
    return lines, found


def ablation(summary: dict[str, dict[str, float]], frames: dict) -> list[tuple[str, str, str]]:
    """(quantity, masked run, no-mask run) side by side, when the ablation ran; empty otherwise."""
    a, b = frames.get("search-r1-lite"), frames.get("search-r1-lite-no-mask")
    if a is None or b is None:
        return []
    rows = []
    for key, label in (("em_all", "test EM, all"), ("em_single-hop", "test EM, single-hop"),
                       ("em_two-hop", "test EM, two-hop")):
        if key in summary.get("search-r1-lite", {}) and key in summary.get("search-r1-lite-no-mask", {}):
            rows.append((label, f"{summary['search-r1-lite'][key]:.3f}",
                         f"{summary['search-r1-lite-no-mask'][key]:.3f}"))
    for metric, label, fmt in (("reward_mean", "sampled reward, first -> last steps", "{:.2f}"),
                               ("valid_action_rate", "valid actions, first -> last steps", "{:.2f}"),
                               ("response_length_mean", "tokens written per answer, first -> last steps", "{:.0f}"),
                               ("searches_mean", "searches per question, first -> last steps", "{:.2f}")):
        if metric in a and metric in b:
            rows.append((label, *(" -> ".join(fmt.format(v) for v in _trend(f, metric)) for f in (a, b))))
    if "tokens_trained" in a and "tokens_trained" in b:
        rows.append(("tokens in the loss per step (mean)", f"{a['tokens_trained'].mean():.0f}",
                     f"{b['tokens_trained'].mean():.0f}"))
    return rows


def algorithms(summary: dict[str, dict[str, float]], frames: dict) -> tuple[list[tuple[str, str, str]], list[str]]:
    """GRPO's run and PPO's side by side (rows: quantity, GRPO, PPO), and sentences saying which learned faster per
    step and per wall-clock minute; empty when PPO did not run. "Learned" = the sampled reward's rise, the mean of
    the last 5 steps less the mean of the first 5 (as in the ablation table)."""
    g, p = frames.get("search-r1-lite"), frames.get("search-r1-lite-ppo")
    if g is None or p is None or g.empty or p.empty:
        return [], []
    rows = [(label, *(f"{summary[name][key]:.3f}" if key in summary.get(name, {}) else "-"
                      for name in ("search-r1-lite", "search-r1-lite-ppo")))
            for key, label in (("em_all", "test EM, all"), ("em_single-hop", "test EM, single-hop"),
                               ("em_two-hop", "test EM, two-hop"), ("searches_two-hop", "test searches, two-hop"))]
    rise, minutes = {}, {}
    for name, f in (("GRPO", g), ("PPO", p)):
        first, last = _trend(f, "reward_mean")
        rise[name], minutes[name] = last - first, f["step_seconds"].sum() / 60
    rows += [("steps trained", f"{len(g)}", f"{len(p)}"),
             ("training minutes", f"{minutes['GRPO']:.1f}", f"{minutes['PPO']:.1f}"),
             ("seconds per step (median)", f"{g['step_seconds'].median():.0f}", f"{p['step_seconds'].median():.0f}"),
             ("update seconds per step (median)", f"{g['update_seconds'].median():.1f}",
              f"{p['update_seconds'].median():.1f}")]
    for metric, label, fmt in (("reward_mean", "sampled reward, first -> last steps", "{:.2f}"),
                               ("searches_mean", "searches per question, first -> last steps", "{:.2f}"),
                               ("response_length_mean", "tokens written per answer, first -> last steps", "{:.0f}")):
        rows.append((label, *(" -> ".join(fmt.format(v) for v in _trend(f, metric)) for f in (g, p))))
    per_step = {k: rise[k] / max(len(f), 1) for k, f in (("GRPO", g), ("PPO", p))}
    per_minute = {k: rise[k] / max(minutes[k], 1e-9) for k in rise}
    said = []
    for unit, rate in (("step", per_step), ("wall-clock minute", per_minute)):
        fast, slow = sorted(rate, key=rate.get, reverse=True)
        if rate[fast] <= 0:
            said.append(f"Per {unit}, neither learned: the sampled reward did not rise (GRPO {rate['GRPO']:+.4f}, "
                        f"PPO {rate['PPO']:+.4f} per {unit}).")
        elif rate[fast] == rate[slow]:
            said.append(f"Per {unit}, the two learned alike ({rate[fast]:+.4f}).")
        else:
            said.append(f"Per {unit}, {fast} learned faster: sampled reward rose {rate[fast]:+.4f} per {unit} "
                        f"against {slow}'s {rate[slow]:+.4f}.")
    swing = max(float(f["reward_mean"].diff().abs().fillna(0).max()) for f in (g, p))
    said.append(f"Read these rates as a sign, not a measurement: {len(g)} and {len(p)} steps, and the sampled reward "
                f"moved by up to {swing:.2f} from one step to the next. The test EM rows are the outcome.")
    return rows, said


def _phase_settings(phase: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (phase or {}).items() if k != "max_steps")


def _reward_deviation(config, phase_2=None) -> list[str]:
    """A line for each phase (a TrainConfig each) whose reward has an extension on (searchr1_lite/reward.py); none
    for EM alone."""
    keys = ("format_bonus", "extra_search_cost")
    first, second = ({k: getattr(c, k) for k in keys} for c in (config, phase_2 or config))
    phases = [("reward", first)] if first == second else [("reward in phase 1", first), ("reward in phase 2", second)]
    return [f"- {name}: EM with `format_bonus` {used['format_bonus']:g} and `extra_search_cost` "
            f"{used['extra_search_cost']:g} (paper: EM alone; searchr1_lite/reward.py)."
            for name, used in phases if any(used.values())]


def _kept(run: Path) -> str:
    """What `keep_best` kept (the run's best.json), as the end of a sentence; empty without it."""
    if not (run / "best.json").exists():
        return ""
    kept, rows = json.loads((run / "best.json").read_text()), read_rows(run / "metrics.jsonl")
    evals = sum("eval_em" in r for r in rows)
    score = {"eval_em": "held-out EM", "worst_hop": "lower of single-hop and two-hop EM"}[kept["by"]]
    return (f"; its adapter, tested above, is step {kept['step']}'s (`keep_best`: the best {score} on the world's dev "
            f"questions, {kept['score']:.3f}, of {evals} evaluations; the last step, {kept['last_step']}, scored "
            f"{kept['last_score']:.3f})")


def budget_advice(runs: list[Path], timings: dict[str, float], budget_minutes: float | None) -> str | None:
    """When the time budget stopped phase 1 or phase 2 before its last step: which, and the `--budget-minutes` that
    would leave them all their steps on this machine, estimated from this run's own stage times and median step
    (one step more as slack, as the budget stops a step early). None when every phase ran all its steps."""
    from statistics import median

    from .train import load_run_config

    if not budget_minutes:
        return None
    names = {"train": "phase 1", "train-two-hop": "phase 2"}
    cut, more_s = [], 0.0
    for run in (r for r in runs if r.name in names):
        rows = read_rows(run / "metrics.jsonl")
        planned = load_run_config(run).optim.max_steps
        if not rows or "time budget" not in str(rows[-1].get("stopped", "")):
            continue
        step = median(r["step_seconds"] for r in rows)
        cut.append(f"{names[run.name]} ran {len(rows)} of its {planned} steps (median {step:.0f} s a step)")
        more_s += (planned - len(rows) + 1) * step
    if not cut:
        return None
    spent = sum(v for k, v in timings.items() if k not in ("total (this call)", "report"))
    return (f"The budget stopped training before its last step: {'; '.join(cut)}. `--budget-minutes "
            f"{-(-(spent + more_s) // 60):.0f} --fresh` would give every phase all its steps on this machine (an "
            f"estimate from this run's stages, {spent / 60:.0f} min in all, and its median steps).")


def _table(summary: dict[str, dict[str, float]]) -> str:
    head = ("| method | EM single-hop | EM two-hop | EM all | searches/q single-hop | searches/q two-hop |\n"
            "|---|---:|---:|---:|---:|---:|")
    lines = [head]
    for name, s in summary.items():
        lines.append(f"| {METHOD_LABELS.get(name, name)} | {s.get('em_single-hop', 0):.3f} | "
                     f"{s.get('em_two-hop', 0):.3f} | {s['em_all']:.3f} | "
                     f"{s.get('searches_single-hop', 0):.2f} | {s.get('searches_two-hop', 0):.2f} |")
    return "\n".join(lines)


def parse_table(markdown: str) -> dict[str, list[float]]:
    """The EM table of a report.md back as {method label: [numbers]} (for checks)."""
    out = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in METHOD_LABELS.values():
            out[cells[0]] = [float(c) for c in cells[1:]]
    return out


def prompt_deviation(template: str) -> str:
    """The deviations line for the prompts: the search's own template where a run chose one (the baselines keep the
    two single-hop examples, searchr1_lite/world_prompts.py): the baselines' search prompt is the one source of
    which template is the default, so renaming it cannot make this line wrong."""
    from .world_prompts import WORLD_METHOD_TEMPLATES, WORLD_TEMPLATES

    if WORLD_TEMPLATES.get(template) == WORLD_METHOD_TEMPLATES["search"]:
        return "- two single-hop worked examples in every method's prompt"
    return (f"- two single-hop worked examples in Direct's and RAG's prompts, and the search's prompt "
            f"`template: {template}` (searchr1_lite/world_prompts.py)")


def _deviations(out: Path, settings, configs: dict, frames: dict, with_ppo: bool) -> list[str]:
    """The report's list of what differs from the paper's recipe, read from the runs' own configs (by run key)."""
    config = configs["search-r1-lite"]
    roll, ppo = config.rollout, configs.get("search-r1-lite-ppo", config).ppo
    return [
        f"{prompt_deviation(roll.template)}, and `<think>` written as the start of the response;",
        "- RAG's instruction: the authors' less one sentence, with the passages before the question, not after;",
        "- the inserted block's token boundary made as in running text;",
        f"- temperature {roll.temperature} (paper 1.0), KL coefficient {config.grpo.beta} (paper 0.001), "
        f"LoRA (paper: full fine-tuning), a synthetic world and BM25 (paper: NQ+HotpotQA, e5 over Wikipedia).",
        *_reward_deviation(config, configs.get("search-r1-lite-two-hop")),
        *([f"- loss aggregation `{config.grpo.loss_agg}` (the authors' veRL: `token-mean`, one mean over all "
           "generated tokens)."] if config.grpo.loss_agg != "token-mean" else []),
        *([f"- PPO: the critic is {CRITICS[ppo.critic]} (`critic: {ppo.critic}`; the authors': a separate "
           "model), its head starting at 0; its value loss covers generated tokens only; no entropy bonus; KL "
           f"coefficient {ppo.kl_coef} in the reward (authors 0.001); critic learning rate {ppo.critic_lr}; "
           f"{config.optim.group_size} samples a question, as GRPO's (authors: 1)."] if with_ppo else []),
        *([f"- a curriculum (the paper trains one phase): phase 2 goes on from phase 1's adapter with "
           f"{_phase_settings(settings.two_hop_phase)}, for {len(frames['search-r1-lite-two-hop'])} steps"
           f"{_kept(out / 'train-two-hop')}."] if "search-r1-lite-two-hop" in frames else []),
    ]


def _evaluations(out: Path) -> tuple[dict, dict]:
    """(summary, by question type) of each method evaluated in out/eval/, in METHOD_LABELS' order."""
    summary, types = {}, {}
    for name in METHOD_LABELS:
        path = out / "eval" / f"{name}.json"
        if path.exists():
            rows = json.loads(path.read_text())["rows"]
            summary[name], types[name] = summarize(rows), by_question_type(rows)
    return summary, types


def _draw(out: Path, frames: dict, versus: list, runs: list[Path]) -> None:
    """dynamics.png (every run against steps; the curriculum's phase 2 after phase 1, whose adapter it goes on from)
    and, with a PPO run, ppo-vs-grpo.png (against training minutes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .demo import RUNS
    from .plots import plot_dynamics, run_links

    label = {str(r): METHOD_LABELS[RUNS[r.name]] for r in runs}
    continues, kept = run_links(runs)
    plt.close(plot_dynamics({METHOD_LABELS[k]: f for k, f in frames.items()}, metrics=DEMO_METRICS,
                            out=out / "dynamics.png", continues={label[a]: label[b] for a, b in continues.items()},
                            kept={label[r]: step for r, step in kept.items()}))
    if versus:
        pair = {"GRPO": frames["search-r1-lite"], "PPO": frames["search-r1-lite-ppo"]}
        plt.close(plot_dynamics(pair, metrics=["reward_mean", "em", "searches_mean", "response_length_mean"],
                                out=out / "ppo-vs-grpo.png", x="minutes"))


def _setting(settings, config, masked) -> str:
    """The report's setting line: the model, the steps that ran (and why fewer), the recipe and the world."""
    pol, opt, roll = config.policy, config.optim, config.rollout
    steps = f"{len(masked)} GRPO step{'s' if len(masked) != 1 else ''}"
    if len(masked) < opt.max_steps:
        stopped = masked["stopped"].dropna().tolist() if "stopped" in masked else []
        steps = f"{steps} (of {opt.max_steps}: {stopped[-1] if stopped else 'stopped early'}; see Time)"
    phase_1 = getattr(settings, "phase_1_world", None)
    return (f"Setting: {pol.model}, LoRA r={pol.lora_r} on "
            + (f"the top {pol.lora_layers} layers, " if pol.lora_layers else "every layer, ")
            + f"{steps} × {opt.prompts_per_step} questions × group {opt.group_size}, "
            f"lr {opt.learning_rate}, temperature {roll.temperature}, up to {roll.max_turns} searches, "
            f"BM25 top {roll.topk} over the synthetic world `{settings.world}`"
            + (f" (phase 1 trained on `{phase_1}`)." if phase_1 else "."))


def write_report(out: str | Path, settings, runs: list[Path]) -> Path:
    """report.md, summary.json and the figures in `out`, from its eval/*.json, the runs' metrics and timings.json."""
    from datetime import datetime, timezone

    from .demo import RUNS
    from .plots import load_metrics
    from .train import load_run_config

    out = Path(out)
    summary, types = _evaluations(out)
    frames = {RUNS[r.name]: load_metrics(r) for r in runs}
    collapse, collapse_found = collapse_lines({RUNS[r.name]: r for r in runs})
    trained_runs = [k for k in ("search-r1-lite", "search-r1-lite-two-hop") if k in collapse_found]
    checks = goals(summary, frames, [f for k in trained_runs for f in collapse_found[k]] if trained_runs else None)
    compared = ablation(summary, frames)
    versus, which = algorithms(summary, frames)
    _draw(out, frames, versus, runs)
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
    configs = {RUNS[r.name]: load_run_config(r) for r in runs}  # read once: the setting line and the deviations
    setting = _setting(settings, configs["search-r1-lite"], frames["search-r1-lite"])
    advice = budget_advice(runs, timings, settings.budget_minutes)
    goals_rows = [{"goal": g, "met": m, "figures": f} for g, m, f in checks]
    collapse_rows = {k: [f.as_dict() for f in v] for k, v in collapse_found.items()}
    (out / "summary.json").write_text(json.dumps({"methods": summary, "goals": goals_rows, "timings": timings,
                                                  "ablation": [list(r) for r in compared],
                                                  "ppo_vs_grpo": [list(r) for r in versus], "faster": which,
                                                  "collapse": collapse_rows, "by_question_type": types,
                                                  "budget_advice": advice}, indent=1))
    n = next(iter(summary.values()))
    mark = {True: "met", False: "**not met**", None: "n/a"}
    lines = [
        "# Search-R1-lite demo report", "",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `searchr1-lite demo`. Every number below is "
        "computed from this run's files (`eval/*.json`, one row per question; `train*/metrics.jsonl`).", "",
        setting,
        f"Test set: {n.get('n_single-hop', 0)} single-hop + {n.get('n_two-hop', 0)} two-hop held-out questions about "
        "people never seen in training; greedy decoding.", "",
        "## Exact match on held-out questions", "", _table(summary), "",
        *_types_table(types),
        "## The paper's claims, in miniature (thresholds: the demo's goals, issue 18)", "",
        "| claim | result | figures |", "|---|---|---|",
        *[f"| {g} | {mark[m]} | {f} |" for g, m, f in checks], "",
        *(["## Ablation: inserted tokens in the loss (`--no-mask`)", "",
           "The same training with the retrieved passages' tokens trained on, as if the policy had written them; "
           "its curves are beside the masked run's in the figure below.", "",
           "| | masked (Search-R1) | no mask |", "|---|---:|---:|",
           *[f"| {q} | {x} | {y} |" for q, x, y in compared], ""] if compared else []),
        *(["## PPO against GRPO (`--algorithm ppo`)", "",
           "The same world, questions, recipe and time budget, trained with PPO (a value head, GAE with "
           "gamma = lambda = 1, whitened advantages, the clipped value loss; searchr1_lite/ppo.py) instead of GRPO's "
           "group baselines. Both runs' curves are in the figure below, against training minutes.", "",
           "| | GRPO | PPO |", "|---|---:|---:|", *[f"| {q} | {x} | {y} |" for q, x, y in versus], "",
           *which, "", "![GRPO and PPO against training minutes](ppo-vs-grpo.png)", ""] if versus else []),
        "## Collapse checks", "", *collapse, "",
        "## Training dynamics", "",
        "![reward, EM, response length and searches per question vs step](dynamics.png)", "",
        "Points are steps (sampled rollouts, temperature as above), joined by faint lines; bold lines are moving "
        "averages. Phase 2 of the curriculum, where there is one, goes on from phase 1's last step. Squares, where a "
        "run evaluated, are its dev questions (greedy); a dash-dot line marks the step whose weights a run kept, a "
        "red dashed one a collapse check that fired.", "",
        "## Samples", "",
        *[f"- [{METHOD_LABELS[k]}](eval/{k}.samples.html)" for k in summary], "",
        "## Time", "",
        *([f"Budget: {settings.budget_minutes:g} minutes for the whole demo; training stops after the last step "
           "that fits (`--budget-minutes`, 0 = none).", ""] if settings.budget_minutes else []),
        "Each stage's time is summed over every call of the demo in this folder (a resumed demo's too); the "
        "total is this call's alone.", "",
        *[f"- {k}: {v:.0f} s" for k, v in timings.items()], "",
        *([advice, ""] if advice else []),
        "## Deviations from the paper (needed by a 135M model on a CPU; see docs/demo.md)", "",
        *_deviations(out, settings, configs, frames, with_ppo=bool(versus)),
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
