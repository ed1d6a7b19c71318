"""`searchr1-lite demo --quick` end to end: the report's structure, and that its numbers are the run's own."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from searchr1_lite.demo import DemoSettings, held_out_set, run_demo
from searchr1_lite.report import METHOD_LABELS, SEARCHES_CLAIM, parse_table, summarize, write_report
from searchr1_lite.world import load_world

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_trains_the_recipe_file(tmp_path):
    """One source: the demo's training config is searchr1_lite/configs/world-cpu.yaml with the demo's sizes on top."""
    from searchr1_lite.config import TrainConfig
    from searchr1_lite.demo import RECIPE, train_config

    recipe = TrainConfig.load(RECIPE)
    cfg = train_config(DemoSettings(), tmp_path)
    assert cfg.policy == recipe.policy and cfg.rollout == recipe.rollout and cfg.grpo == recipe.grpo
    assert cfg.optim == dataclasses.replace(recipe.optim, max_steps=DemoSettings().train["max_steps"])
    assert cfg.data.questions == DemoSettings().phase_1_world
    quick = train_config(DemoSettings.quick(), tmp_path)
    assert quick.optim.group_size == 4 and quick.rollout.max_new_tokens == 32 and quick.policy == recipe.policy
    assert quick.data.questions == DemoSettings.quick().world and DemoSettings.quick().two_hop_phase is None


def test_the_demo_is_a_curriculum_whose_phase_2_is_the_author_chains_in_the_time_phase_1_leaves(tmp_path):
    """`make demo` (docs/multi-hop/, sections 20, 22 and 23): phase 1 is the recipe for 10 steps on all four kinds of
    question; phase 2, the held-out test and the baselines are `--author-chain`'s, with phase 2 at the recipe's
    learning rate, all the world's dev questions every 2 steps and the best kept, and as many of 30 steps as the budget
    leaves; `--one-phase` drops phase 2."""
    from searchr1_lite.cli import build_parser, cmd_demo
    from searchr1_lite.demo import saved_settings, train_config, two_hop_config
    from searchr1_lite.train import split_questions

    demo, chain = DemoSettings(), DemoSettings.author_chain()
    assert (demo.world, demo.phase_1_world, demo.budget_minutes) == (chain.world, chain.phase_1_world, 30)
    assert demo.train == {"max_steps": 10}
    ours, theirs = two_hop_config(demo, tmp_path), two_hop_config(chain, tmp_path)
    assert (ours.eval_every, ours.keep_best, ours.keep_best_by, ours.optim.max_steps) == (2, True, "worst_hop", 30)
    assert ours.optim.learning_rate == train_config(demo, tmp_path).optim.learning_rate == 3e-4 != \
        theirs.optim.learning_rate
    assert ours.eval_size >= len(split_questions(ours.data, None)[1]) == 12  # every dev question, half two-hop
    same = lambda c: (c.data, c.policy, c.rollout, c.grpo, c.output_dir)  # noqa: E731
    assert same(ours) == same(theirs)
    seen = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("searchr1_lite.demo.run_demo", lambda out, settings, fresh: seen.update(settings=settings))
        cmd_demo(build_parser().parse_args(["demo", "--one-phase", "--out", str(tmp_path / "d")]))
    assert seen["settings"] == dataclasses.replace(demo, two_hop_phase=None)
    # a folder written before phase 2 and phase 1's own world existed ran one phase on one world, whatever today's are
    before = {"world": demo.phase_1_world, "test_per_kind": 32, "train": {"max_steps": 30}, "ablation": True}
    assert {k: v for k, v in saved_settings(before).items() if k in ("two_hop_phase", "phase_1_world", "ppo")} == {
        "two_hop_phase": None, "phase_1_world": None, "ppo": False}


def test_the_long_demo_adds_phase_2_to_the_recipe_file(tmp_path):
    """`--long`: phase 2 is the recipe with the curriculum's settings on top, from phase 1's adapter; phase 1 is
    the demo's phase 1 for the recipe's 30 steps."""
    from searchr1_lite.demo import train_config, two_hop_config

    settings = DemoSettings.long()
    assert train_config(settings, tmp_path) == train_config(dataclasses.replace(DemoSettings(), train={}), tmp_path)
    phase2 = two_hop_config(settings, tmp_path)
    assert (phase2.rollout.template, phase2.rollout.temperature, phase2.optim.learning_rate,
            phase2.rollout.max_turns) == ("world-two-hop-example", 1.0, 1e-4, 2)
    assert phase2.data.questions == "world:seed=0,people=240,two_hop_share=0.5"
    assert phase2.data.corpus == settings.world and phase2.policy.adapter == str(tmp_path / "train" / "adapter")
    assert phase2.output_dir == str(tmp_path / "train-two-hop") and settings.budget_minutes == 120
    # all 60 dev questions; the adapter kept is the one that trades neither hop count for the other
    assert (phase2.eval_every, phase2.eval_size, phase2.keep_best, phase2.keep_best_by) == (5, 60, True, "worst_hop")


def test_the_author_chain_demo_is_the_long_demo_on_two_kinds_of_question(tmp_path):
    """`--author-chain`: phase 1 is `--long`'s (a `--long` folder's `train/` fits it); phase 2, the held-out test and
    the baselines keep the two kinds where the first passage decides, with the same corpus; phase 2 is `--long`'s with
    the author chain's worked example, 64 tokens a turn and 15 steps."""
    from searchr1_lite.demo import _runs_differ, train_config, two_hop_config

    settings, long = DemoSettings.author_chain(), DemoSettings.long()
    assert train_config(settings, tmp_path) == train_config(long, tmp_path)
    world, full = load_world(settings.world), load_world(settings.phase_1_world)
    assert settings.phase_1_world == long.world and world.corpus.checksum == full.corpus.checksum
    assert {q.meta["kind"] for q in world.splits["test"]} == {"birthplace", "author_birthplace"}
    phase2, long2 = two_hop_config(settings, tmp_path), two_hop_config(long, tmp_path)
    assert phase2.data.corpus == settings.world and "kinds=birthplace+author_birthplace" in phase2.data.questions
    assert (phase2.rollout.template, phase2.rollout.max_new_tokens, phase2.optim.max_steps) == (
        "world-author-chain", 64, 15)
    same = lambda c: (dataclasses.replace(c.rollout, template="", max_new_tokens=0), c.optim.learning_rate,  # noqa: E731
                      c.eval_size, c.keep_best_by, c.policy)
    assert same(phase2) == same(long2) and settings.budget_minutes == long.budget_minutes
    # a folder written before `phase_1_world` existed still resumes; the author chain's is another run
    saved = dataclasses.asdict(long)
    del saved["phase_1_world"]
    assert not _runs_differ(saved, dataclasses.asdict(long)) and _runs_differ(saved, dataclasses.asdict(settings))


def test_test_set_is_balanced_seeded_and_held_out():
    world = load_world("world:people=60")
    a, b = held_out_set(world, 5), held_out_set(world, 5)
    assert [q.id for q in a["two-hop"]] == [q.id for q in b["two-hop"]]
    assert {q.meta["hops"] for q in a["single-hop"]} == {1} and {q.meta["hops"] for q in a["two-hop"]} == {2}
    train_people = {q.meta["person"] for q in world.splits["train"]}
    assert not {q.meta["person"] for qs in a.values() for q in qs} & train_people


def _recomputed(run: Path) -> dict[str, dict[str, float]]:
    """EM and searches per kind, straight from the per-question rows (independent of report.py)."""
    out = {}
    for name in METHOD_LABELS:
        path = run / "eval" / f"{name}.json"
        if path.exists():
            rows = json.loads(path.read_text())["rows"]
            by = lambda kind, key: sum(r[key] for r in rows if r["kind"] == kind) / sum(r["kind"] == kind for r in rows)  # noqa: E731
            out[METHOD_LABELS[name]] = [by("single-hop", "em"), by("two-hop", "em"),
                                        sum(r["em"] for r in rows) / len(rows),
                                        by("single-hop", "searches"), by("two-hop", "searches")]
    return out


@pytest.fixture
def quick_run(quick_demo):
    """The README's quick start, `searchr1-lite demo --quick`, run once a session (tests/conftest.py)."""
    return quick_demo


def _budget_settings() -> DemoSettings:
    settings = DemoSettings.quick()
    settings.ablation, settings.ppo, settings.budget_minutes = True, True, 0.5
    # phase 2 writes 4 tokens at most: its evaluation shows whether it used phase 2's settings or phase 1's (16)
    settings.two_hop_phase = {"template": "world-two-hop-example", "max_turns": 0, "max_new_tokens": 4,
                              "two_hop_share": 0.75, "eval_every": 1, "keep_best": True,
                              "keep_best_by": "worst_hop", "extra_search_cost": 0.1}  # as make demo's phase 2
    settings.train = {**settings.train, "prompts_per_step": 1, "group_size": 2, "max_new_tokens": 16}  # a cheap step
    return settings


@pytest.fixture(scope="module")
def budget_run(quick_demo, tmp_path_factory):
    """The quick run's baselines, then a budget that leaves no time to train, with the ablation (`--no-mask`), PPO
    (`--algorithm ppo`) and a curriculum's phase 2 (`--long`): one step of each run, then the stop is recorded,
    evaluated and reported."""
    import shutil

    out = tmp_path_factory.mktemp("demo") / "budget"
    shutil.copytree(quick_demo, out, ignore=shutil.ignore_patterns("train*", "search-r1-lite*", "report.md"))
    (out / "settings.json").write_text(json.dumps(dataclasses.asdict(_budget_settings())))
    run_demo(out, _budget_settings(), progress=False)
    return out


def test_quick_demo_writes_report_plots_and_samples(quick_run):
    report = (quick_run / "report.md").read_text()
    for heading in ("## Exact match on held-out questions",
                    "## The paper's claims, in miniature (thresholds: the demo's goals, issue 18)",
                    "## Training dynamics", "## Deviations from the paper"):
        assert heading in report
    table = parse_table(report)
    assert set(table) == set(METHOD_LABELS.values()) - {METHOD_LABELS[k] for k in (
        "search-r1-lite-no-mask", "search-r1-lite-ppo", "search-r1-lite-two-hop")}  # none of them ran
    assert (quick_run / "dynamics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"^- total \(this call\): \d+ s$", report, re.M)  # the whole call's time, up to the report
    assert "summed over every call of the demo in this folder" in report  # beside stage times of every call
    assert "<html" in (quick_run / "eval" / "search-r1-lite.samples.html").read_text()
    metrics = [json.loads(x) for x in (quick_run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, DemoSettings.quick().train["max_steps"] + 1))
    assert all("em_1hop" in m or "em_2hop" in m for m in metrics)  # a step's questions may all be of one kind
    assert any("searches_2hop" in m for m in metrics) and any("searches_1hop" in m for m in metrics)
    evaluated = {k.removeprefix("eval_em_") for k in metrics[-1] if re.fullmatch(r"eval_em_\dhop", k)}
    assert evaluated and min(metrics[-1][f"eval_em_{h}"] for h in evaluated) - 1e-9 <= metrics[-1]["eval_em"] <= max(
        metrics[-1][f"eval_em_{h}"] for h in evaluated) + 1e-9  # the dev questions' EM, per hop count too
    types = {1: ("birthplace", "author"), 2: ("birth_country", "author_birthplace")}
    for m, hops in ((m, h) for m in metrics for h in types if f"em_{h}hop" in m):  # each hop count: a mean of its types
        for metric in ("em", "searches"):
            of_types = [m[f"{metric}_{k}"] for k in types[hops] if f"{metric}_{k}" in m]
            assert of_types and min(of_types) - 1e-9 <= m[f"{metric}_{hops}hop"] <= max(of_types) + 1e-9, m
    from searchr1_lite.collapse import CHECKS
    for claim in ("searches per two-hop question rise during training",
                  f"no collapse: none of the {len(CHECKS)} collapse checks"):
        assert re.search(rf"\| {claim}.*\| (met|\*\*not met\*\*) \|", report), claim
    from searchr1_lite.train import load_run_config
    agg = load_run_config(quick_run / "train").grpo.loss_agg  # the run's own, against the authors' token mean
    assert (f"loss aggregation `{agg}` (the authors' veRL: `token-mean`" in report) == (agg != "token-mean")
    assert "- reward:" not in report  # the paper's reward, EM alone, is no deviation
    assert "## Ablation" not in report and not (quick_run / "train-no-mask").exists()
    assert "## PPO against GRPO" not in report and not (quick_run / "train-ppo").exists()
    # the world a user can open
    assert (quick_run / "world" / "corpus.jsonl").exists() and (quick_run / "world" / "test.jsonl").exists()


def test_the_ablation_trains_on_the_inserted_tokens_and_is_compared(budget_run):
    """`--no-mask`: its own run, as many steps as the masked one, the inserted tokens in its loss, in the report."""
    masked = [json.loads(x) for x in (budget_run / "train" / "metrics.jsonl").read_text().splitlines()]
    unmasked = [json.loads(x) for x in (budget_run / "train-no-mask" / "metrics.jsonl").read_text().splitlines()]
    assert len(unmasked) == len(masked)
    assert sum(u["tokens_trained"] for u in unmasked) > sum(m["tokens_trained"] for m in masked)
    report = (budget_run / "report.md").read_text()
    assert "## Ablation: inserted tokens in the loss" in report
    assert set(parse_table(report)) == set(METHOD_LABELS.values())  # the baselines, the trained policy, the ablation
    summary = json.loads((budget_run / "summary.json").read_text())
    compared = {q: (x, y) for q, x, y in summary["ablation"]}
    assert compared["tokens in the loss per step (mean)"] == (
        f"{sum(m['tokens_trained'] for m in masked) / len(masked):.0f}",
        f"{sum(u['tokens_trained'] for u in unmasked) / len(unmasked):.0f}")


def test_ppo_trains_beside_grpo_and_the_report_compares_them_from_the_runs(budget_run):
    """`--algorithm ppo`: its own run with a critic, the same budget, and a comparison computed from both runs."""
    grpo, ppo = ([json.loads(x) for x in (budget_run / run / "metrics.jsonl").read_text().splitlines()]
                 for run in ("train", "train-ppo"))
    assert "value_loss" in ppo[0] and "value_loss" not in grpo[0]
    assert json.loads((budget_run / "train-ppo" / "config.json").read_text())["algorithm"] == "ppo"
    assert (budget_run / "train-ppo" / f"checkpoint-{len(ppo)}" / "critic.pt").exists()
    report = (budget_run / "report.md").read_text()
    assert "## PPO against GRPO" in report and (budget_run / "ppo-vs-grpo.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((budget_run / "summary.json").read_text())
    versus = {q: (x, y) for q, x, y in summary["ppo_vs_grpo"]}
    assert versus["steps trained"] == (str(len(grpo)), str(len(ppo)))
    assert versus["training minutes"] == tuple(f"{sum(r['step_seconds'] for r in rows) / 60:.1f}"
                                              for rows in (grpo, ppo))
    for sentence in summary["faster"][:2]:  # one per unit, each in the report
        assert sentence in report
        assert re.match(r"Per (step|wall-clock minute), ((GRPO|PPO) learned faster|the two .*alike|neither learned)",
                        sentence)
    assert len(summary["faster"]) == 3 and summary["faster"][2] in report


def test_the_curriculum_phase_2_starts_from_phase_1_and_is_judged_with_its_own_prompt(budget_run):
    """`--long`: phase 2 trains from phase 1's final adapter on the world with more two-hop questions, is evaluated
    with its own prompt and turns, and is the trained policy the report's claims judge."""
    from searchr1_lite.checkpoint import read_rows
    from searchr1_lite.plots import EVALUATED, run_links
    from searchr1_lite.train import load_run_config

    phase2 = load_run_config(budget_run / "train-two-hop")
    assert phase2.policy.adapter == str(budget_run / "train" / "adapter")
    assert phase2.rollout.template == "world-two-hop-example" and phase2.rollout.max_turns == 0
    assert phase2.data.questions == "world:seed=0,people=60,two_hop_share=0.75"
    rows = {n: json.loads((budget_run / "eval" / f"{n}.json").read_text())["rows"]
            for n in ("search-r1-lite", "search-r1-lite-two-hop")}
    assert all(r["response_length"] <= 4 and r["searches"] == 0 for r in rows["search-r1-lite-two-hop"])
    assert any(r["response_length"] > 4 for r in rows["search-r1-lite"])  # phase 1's settings would write more
    summary = json.loads((budget_run / "summary.json").read_text())
    claim = next(g for g in summary["goals"] if g["goal"].startswith("two-hop questions draw"))
    two_hop = summarize(rows["search-r1-lite-two-hop"])
    assert claim["figures"] == f"{two_hop['searches_two-hop']:.2f} vs {two_hop['searches_single-hop']:.2f}"
    kept = json.loads((budget_run / "train-two-hop" / "best.json").read_text())  # keep_best: the report says which
    assert (f"its adapter, tested above, is step {kept['step']}'s (`keep_best`: the best lower of single-hop and "
            f"two-hop EM on the world's dev questions, {kept['score']:.3f}") in (budget_run / "report.md").read_text()
    assert "a curriculum (the paper trains one phase)" in (budget_run / "report.md").read_text()
    one, two = budget_run / "train", budget_run / "train-two-hop"  # dynamics.png: phase 2 after phase 1, kept step
    assert run_links([one, two, budget_run / "train-no-mask"]) == ({str(two): str(one)}, {str(two): kept["step"]})
    # its squares: each eval_* key the figure looks for is one that the run wrote
    evaluated = [row for row in read_rows(two / "metrics.jsonl") if "eval_em" in row]
    assert evaluated and set(EVALUATED.values()) <= set(evaluated[-1])
    # a reward extension in phase 2 only: the deviations name it for phase 2, and phase 1 is the paper's EM
    assert phase2.extra_search_cost == 0.1 and load_run_config(budget_run / "train").extra_search_cost == 0
    report = (budget_run / "report.md").read_text()
    assert "- reward in phase 2: EM with `format_bonus` 0 and `extra_search_cost` 0.1 (paper: EM alone" in report
    assert "- reward in phase 1" not in report


def test_which_learned_faster_is_judged_per_step_and_per_minute():
    """PPO's reward rises more a step but its steps take twice as long: faster per step, slower per minute."""
    import pandas as pd

    from searchr1_lite.report import algorithms

    def run(rewards, seconds):
        return pd.DataFrame({"step": range(1, len(rewards) + 1), "reward_mean": rewards, "step_seconds": seconds,
                             "update_seconds": seconds / 4, "searches_mean": 1.0, "response_length_mean": 50.0})

    grpo = run([0.1 * i for i in range(10)], 60.0)  # rise 0.7 - 0.2 = 0.5 in 10 steps, 10 minutes
    ppo = run([0.15 * i for i in range(6)], 120.0)  # rise 0.6 - 0.15 = 0.45 in 6 steps, 12 minutes
    rows, said = algorithms({}, {"search-r1-lite": grpo, "search-r1-lite-ppo": ppo})
    assert said[:2] == ["Per step, PPO learned faster: sampled reward rose +0.0750 per step against GRPO's +0.0500.",
                        "Per wall-clock minute, GRPO learned faster: sampled reward rose +0.0500 per wall-clock minute "
                        "against PPO's +0.0375."]
    assert said[2].startswith("Read these rates as a sign") and "10 and 6 steps" in said[2] and "up to 0.15" in said[2]
    assert ("steps trained", "10", "6") in rows and ("training minutes", "10.0", "12.0") in rows
    _, flat = algorithms({}, {"search-r1-lite": run([0.5] * 4, 60.0), "search-r1-lite-ppo": run([0.4, 0.3], 60.0)})
    assert all(s.startswith(("Per step, neither", "Per wall-clock minute, neither")) for s in flat[:2])


def test_a_curriculums_claims_judge_phase_2_and_its_searches_from_phase_1s_start():
    """`--long`: the EM claims are phase 2's; searches per two-hop question are compared from phase 1's first steps
    to phase 2's last, and phase 2's own trend is shown beside them (its prompt alone makes the model search twice)."""
    import pandas as pd

    from searchr1_lite.report import goals

    def em(single, two):
        return {"em_single-hop": single, "em_two-hop": two, "em_all": (single + two) / 2,
                "searches_single-hop": 1.0, "searches_two-hop": 1.9}

    summary = {"rag": em(0.3, 0.0), "search-r1-lite": em(0.97, 0.0), "search-r1-lite-two-hop": em(0.5, 0.6)}
    frames = {"search-r1-lite": pd.DataFrame({"searches_2hop": [1.0] * 10}),
              "search-r1-lite-two-hop": pd.DataFrame({"searches_2hop": [2.0] * 5 + [1.8] * 5})}
    said = {goal: (met, figures) for goal, met, figures in goals(summary, frames, [])}
    assert said["trained two-hop EM >= 0.25 and >= 2x RAG's, single-hop EM >= 0.9"] == (
        False, "two-hop 0.60 vs RAG 0.00; single-hop 0.50")
    for single, counted in [(0.88, "0.88 (22 of 25 right; >= 0.9 needs 23)"), (0.92, "0.92 (23 of 25 right)")]:
        summary["search-r1-lite-two-hop"].update({"em_single-hop": single, "n_single-hop": 25})
        figures = goals(summary, frames, [])[0][2]  # the goal in counts of answers: how far a run fell short
        assert figures == f"two-hop 0.60 vs RAG 0.00; single-hop {counted}"
    rise = next(v for k, v in said.items() if k.startswith("searches per two-hop question rise"))
    assert rise == (True, "1.00 -> 1.80; phase 2 alone (its prompt shows two searches) 2.00 -> 1.80")
    assert said[SEARCHES_CLAIM] == (True, "1.90 vs 1.00")
    summary["search-r1-lite-two-hop"].update({"searches_single-hop": 1.72, "searches_two-hop": 1.78})  # twice for all
    assert dict((g, m) for g, m, _ in goals(summary, frames, []))[SEARCHES_CLAIM] is False
    frames["search-r1-lite"] = pd.DataFrame({"searches_1hop": [1.0]})  # phase 1 sampled no two-hop question
    rise = next(g for g in goals(summary, frames, []) if g[0].startswith("searches per two-hop question rise"))
    assert rise[1:] == (False, "nan -> 1.80; phase 2 alone (its prompt shows two searches) 2.00 -> 1.80")


def test_a_short_runs_search_trend_says_what_it_compared():
    """The claim reads "first 5 steps vs last 5"; `demo --quick` trains 3: its figures say it compared 1 with 1."""
    import pandas as pd

    from searchr1_lite.report import goals

    summary = {"rag": {"em_all": 0.3}, "search-r1-lite": {"em_all": 0.5}}
    for values, says in [([1.0, 1.2, 1.5], "1.00 -> 1.50 (a run of 3 steps: the first 1 vs the last 1)"),
                         ([1.0] * 5 + [2.0] * 5, "1.00 -> 2.00")]:
        said = goals(summary, {"search-r1-lite": pd.DataFrame({"searches_2hop": values})})
        rise = next(g for g in said if g[0].startswith("searches per two-hop question rise"))
        assert rise[1:] == (True, says)


def test_report_numbers_are_the_runs_own(quick_run):
    table = parse_table((quick_run / "report.md").read_text())
    recomputed = _recomputed(quick_run)
    for label, numbers in table.items():
        assert numbers == pytest.approx(recomputed[label], abs=6e-3), label
    summary = json.loads((quick_run / "summary.json").read_text())
    rows = json.loads((quick_run / "eval" / "rag.json").read_text())["rows"]
    rag = summary["methods"]["rag"]
    assert rag == pytest.approx(summarize(rows))
    for kind in ("single-hop", "two-hop"):  # counted here, not by summarize: the figures the claims quote
        mine = [r for r in rows if r["kind"] == kind]
        assert rag[f"n_{kind}"] == len(mine) > 0
        assert rag[f"em_{kind}"] == pytest.approx(sum(r["em"] for r in mine) / len(mine))


def test_the_report_breaks_results_down_by_question_type(quick_run):
    """Each row carries the world's type of its question, and the report's type table is those rows' EM and searches."""
    from searchr1_lite.world import QUESTION_TEMPLATES

    wording = {k: [re.escape(t).replace(r"\{person\}", ".+").replace(r"\{work\}", ".+") for t in ts]
               for k, ts in QUESTION_TEMPLATES.items()}
    report = (quick_run / "report.md").read_text()
    section = report.split("## By question type")[1].split("## ")[0]
    for name, label in METHOD_LABELS.items():
        path = quick_run / "eval" / f"{name}.json"
        if not path.exists():
            continue
        rows = json.loads(path.read_text())["rows"]
        assert all(any(re.fullmatch(w, r["question"]) for w in wording[r["question_type"]]) for r in rows)
        hops = {"birthplace": 1, "author": 1, "birth_country": 2, "author_birthplace": 2}
        assert all(hops[r["question_type"]] == {"single-hop": 1, "two-hop": 2}[r["kind"]] for r in rows)
        line = next(x for x in section.splitlines() if x.startswith(f"| {label} |"))
        cells = dict(zip([k for k in QUESTION_TEMPLATES if any(r["question_type"] == k for r in rows)],
                         line.strip("| ").split(" | ")[1:]))
        for kind, cell in cells.items():
            mine = [r for r in rows if r["question_type"] == kind]
            assert cell == (f"{sum(r['em'] for r in mine) / len(mine):.2f} "
                            f"({sum(r['searches'] for r in mine) / len(mine):.2f})"), (label, kind)


def test_report_follows_its_inputs(quick_run, tmp_path):
    """Change one question's result: the table changes with it (no number is a constant)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(quick_run, copy)
    path = copy / "eval" / "direct.json"
    data = json.loads(path.read_text())
    first = data["rows"][0]
    first["em"] = 1.0 - first["em"]
    path.write_text(json.dumps(data))
    write_report(copy, DemoSettings.quick(), [copy / "train"])
    before = parse_table((quick_run / "report.md").read_text())[METHOD_LABELS["direct"]]
    after = parse_table((copy / "report.md").read_text())[METHOD_LABELS["direct"]]
    assert after != before and after == pytest.approx(_recomputed(copy)[METHOD_LABELS["direct"]], abs=6e-3)


def test_the_collapse_checks_in_the_report_are_the_runs_own(quick_run, tmp_path):
    """The report's collapse lines are recomputed from the run's metrics: a NaN put in one step's loss appears there,
    with the last good checkpoint, and the claim turns to not met."""
    import shutil

    from searchr1_lite.collapse import find_collapse

    rows = [json.loads(x) for x in (quick_run / "train" / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((quick_run / "summary.json").read_text())
    assert summary["collapse"]["search-r1-lite"] == [f.as_dict() for f in find_collapse(rows)]
    copy = tmp_path / "copy"
    shutil.copytree(quick_run, copy)
    rows[1]["loss"] = float("nan")
    (copy / "train" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_report(copy, DemoSettings.quick(), [copy / "train"])
    report = (copy / "report.md").read_text()
    assert "**non_finite at step 2 (" in report and "loss=nan; last good checkpoint: none: the base model" in report
    assert re.search(r"\| no collapse: .* \| \*\*not met\*\* \| non_finite at step 2 \|", report)
    assert "## Collapse checks" in (quick_run / "report.md").read_text()
    settings = DemoSettings.quick()
    settings.phase_1_world = "world:seed=1,people=60"  # what the report says phase 1 trained on is the settings'
    write_report(copy, settings, [copy / "train"])
    assert "(phase 1 trained on `world:seed=1,people=60`)" in (copy / "report.md").read_text()
    assert "phase 1 trained on" not in (quick_run / "report.md").read_text()


def test_the_report_names_the_search_prompt_the_run_trained_with(quick_run, tmp_path):
    """The deviations line on the prompts is read from the run's config: a run trained with another template (as
    docs/multi-hop/ section 19's one-phase run) is not said to have had the two single-hop examples."""
    import shutil

    line = "- two single-hop worked examples in every method's prompt, and `<think>`"
    assert line in (quick_run / "report.md").read_text()
    assert "- RAG's instruction: the authors' less one sentence" in (quick_run / "report.md").read_text()
    copy = tmp_path / "copy"
    shutil.copytree(quick_run, copy)
    config = json.loads((copy / "train" / "config.json").read_text())
    config["rollout"]["template"] = "world-author-chain"
    (copy / "train" / "config.json").write_text(json.dumps(config))
    write_report(copy, DemoSettings.quick(), [copy / "train"])
    report = (copy / "report.md").read_text()
    assert line not in report and "and the search's prompt `template: world-author-chain`" in report


def test_demo_resumes_without_redoing_work(quick_run, capsys):
    report_before = (quick_run / "report.md").read_text().split("## Time")[0].split("\n", 3)[3]
    run_demo(quick_run, DemoSettings.quick())
    said = capsys.readouterr().out
    assert said.count("done before") == 3 and ": EM " not in said  # baselines, training, its evaluation
    assert (quick_run / "report.md").read_text().split("## Time")[0].split("\n", 3)[3] == report_before


def test_demo_refuses_other_settings_in_the_same_folder(quick_run):
    other = DemoSettings.quick()
    other.test_per_kind += 1
    with pytest.raises(FileExistsError, match="other settings"):
        run_demo(quick_run, other)


def test_a_damaged_settings_json_is_named_with_what_to_do(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "settings.json").write_text('{"world": "wor')  # a kill while it was written, or an edit
    with pytest.raises(ValueError, match=r"d/settings.json: damaged \(.*\); pass --fresh to start this demo again"):
        run_demo(tmp_path / "d", DemoSettings.quick())


def test_fresh_deletes_only_a_demos_folder(tmp_path, monkeypatch):
    """`demo --fresh --out DIR` used to delete whatever DIR held; now only a demo's (its settings.json), and never
    the folder it runs from."""
    thesis = tmp_path / "mine" / "important" / "thesis.txt"
    thesis.parent.mkdir(parents=True)
    thesis.write_text("three years")
    with pytest.raises(FileExistsError, match=r"mine, which holds no demo \(no settings.json\) but 2 files"):
        run_demo(tmp_path / "mine", DemoSettings.quick(), fresh=True)
    monkeypatch.chdir(tmp_path / "mine" / "important")
    (tmp_path / "mine" / "settings.json").write_text("{}")
    with pytest.raises(FileExistsError, match="which holds the current folder"):
        run_demo(tmp_path / "mine", DemoSettings.quick(), fresh=True)
    assert thesis.read_text() == "three years"
    # without --fresh, a demo would add its files beside someone's: refused too
    with pytest.raises(FileExistsError, match=r"important is not empty \(1 entries\) and holds no demo"):
        run_demo(tmp_path / "mine" / "important", DemoSettings.quick())
    assert [p.name for p in thesis.parent.iterdir()] == ["thesis.txt"]


def test_training_budget_is_what_the_other_stages_leave(tmp_path):
    from searchr1_lite.demo import PHASE_1_STAGES, training_budget

    (tmp_path / "search-untrained.json").write_text(json.dumps({"rows": [], "seconds": 50.0}))
    timings = {"world": 1.0, "baselines": 100.0, "train-search-r1-lite": 999.0}
    assert training_budget(30, timings, tmp_path) == 30 * 60 - 101 - 1.2 * 50 - 30
    assert training_budget(1, timings, tmp_path) == 0.0
    timings |= {"evaluate-search-r1-lite": 20.0, "train-search-r1-lite-two-hop": 500.0}  # phase 2's own: not counted
    assert training_budget(120, timings, tmp_path, PHASE_1_STAGES) == 120 * 60 - 1120 - 1.2 * 50 - 30


def test_a_demo_over_budget_trains_fewer_steps_and_says_so(budget_run):
    """A budget that leaves no time to train: one step, then the stop is recorded, evaluated and reported; the
    ablation trains as many steps as the masked run did."""
    out = budget_run
    for run in ("train", "train-no-mask", "train-two-hop"):
        rows = [json.loads(x) for x in (out / run / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == 1 and (out / run / "adapter").exists()
    assert json.loads((out / "train" / "metrics.jsonl").read_text())["stopped"].startswith("time budget")
    report = (out / "report.md").read_text()
    assert "1 GRPO step (of 3: time budget" in report and "Budget: 0.5 minutes" in report
    assert METHOD_LABELS["search-r1-lite"] in parse_table(report)
    # what a larger budget would take here, from this run's own stage times and steps
    assert "phase 1 ran 1 of its 3 steps" in report and "phase 2 ran 1 of its 3 steps" in report
    minutes = int(re.search(r"`--budget-minutes (\d+) --fresh` would give every phase all its steps", report)[1])
    stages = sum(v for k, v in json.loads((out / "timings.json").read_text()).items()
                 if k.startswith(("world", "baselines", "train-", "evaluate-")))
    steps = [json.loads((out / run / "metrics.jsonl").read_text())["step_seconds"]
             for run in ("train", "train-two-hop")]
    assert stages + 2 * sum(steps) <= 60 * minutes <= stages + 3 * sum(steps) + 60
    assert json.loads((out / "summary.json").read_text())["budget_advice"] in report  # for programs, and the CLI


def test_budget_advice_only_when_the_budget_cut_a_phase(tmp_path):
    from searchr1_lite.demo import RECIPE
    from searchr1_lite.report import budget_advice
    from searchr1_lite.train import TrainConfig

    run = tmp_path / "train"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig.load(RECIPE).updated({"max_steps": 3}, "test").to_dict()))
    row = {"step": 1, "reward_mean": 0.5, "step_seconds": 100.0, "stopped": "time budget: 100 s of 120 s spent"}
    (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    timings = {"baselines": 500.0, "train-search-r1-lite": 100.0, "total (this call)": 600.0, "report": 1.0}
    # 600 s of stages, and 2 steps more plus one of slack at 100 s: 15 minutes
    assert budget_advice([run], timings, 30).startswith("The budget stopped training before its last step: phase 1 "
                                                        "ran 1 of its 3 steps (median 100 s a step). "
                                                        "`--budget-minutes 15 --fresh`")
    assert budget_advice([run], timings, None) is None  # no budget, nothing it cut
    (run / "metrics.jsonl").write_text("".join(json.dumps({**row, "step": i, "stopped": None}) + "\n"
                                               for i in (1, 2, 3)))
    assert budget_advice([run], timings, 30) is None  # all 3 steps ran
    (run / "metrics.jsonl").write_text(json.dumps({**row, "stopped": "SIGTERM"}) + "\n")
    assert budget_advice([run], timings, 30) is None  # stopped, but not by the budget


def test_finished_runs_ship_as_the_lessons_references(budget_run, tmp_path):
    """tools/ship_reference.py: runs' steps without the machine's timings, the demo's held-out EM, a run's config."""
    import sys

    from searchr1_lite.train import TIMING_METRICS

    sys.path.insert(0, str(ROOT / "tools"))
    from ship_reference import ship_demo, ship_run

    ship_demo(budget_run, tmp_path)
    ship_run("one", budget_run / "train", tmp_path)
    for run, name in [("train", "demo"), ("train-no-mask", "demo-no-mask"), ("train", "one")]:
        shipped = [json.loads(x) for x in (tmp_path / f"{name}.metrics.jsonl").read_text().splitlines()]
        ran = [json.loads(x) for x in (budget_run / run / "metrics.jsonl").read_text().splitlines()]
        assert shipped == [{k: v for k, v in r.items() if k not in TIMING_METRICS} for r in ran]
        assert not set(TIMING_METRICS) & set(shipped[0])
    about = json.loads((tmp_path / "demo.summary.json").read_text())
    assert about["methods"] == json.loads((budget_run / "summary.json").read_text())["methods"]
    assert about["command"] == "searchr1-lite demo --no-mask --budget-minutes 0.5 --steps 3"  # the command that made it
    one = json.loads((tmp_path / "one.about.json").read_text())
    assert one["config"] == json.loads((budget_run / "train" / "config.json").read_text())
    with pytest.raises(SystemExit, match="not a finished run"):
        ship_demo(tmp_path, tmp_path)


def test_the_shipped_full_demo_is_the_current_recipe_and_shows_the_ablation():
    """Lesson 05's reference: today's demo's phase 1, every step and at least as many, with the ablation (else re-run
    it and ship it: `searchr1-lite demo --one-phase --no-mask --budget-minutes 0`, then tools/ship_reference.py demo).
    Phase 1's learning rate is constant and its run seeded, so a longer reference begins with the demo's steps."""
    from searchr1_lite.config import TrainConfig
    from searchr1_lite.demo import ADDED_RUNS, RECIPE, saved_settings
    from searchr1_lite.plots import reference_metrics, reference_path

    about = json.loads(reference_path("demo.summary.json").read_text())
    current = dataclasses.asdict(DemoSettings())
    shipped = saved_settings(about["settings"])  # a setting added since it ran has its default
    skip = ("budget_minutes", "train", *ADDED_RUNS)
    assert {k: v for k, v in shipped.items() if k not in skip} == {k: v for k, v in current.items() if k not in skip}
    steps = shipped["train"].pop("max_steps")
    assert shipped["train"] == {k: v for k, v in current["train"].items() if k != "max_steps"}
    assert steps >= current["train"]["max_steps"] and TrainConfig.load(RECIPE).optim.schedule == "constant"
    assert about["settings"]["ablation"] and not about["settings"]["budget_minutes"]  # every step, both runs
    assert about["command"] == "searchr1-lite demo --one-phase --no-mask --budget-minutes 0" + \
        (f" --steps {steps}" if steps != current["train"]["max_steps"] else "")
    masked, unmasked = reference_metrics("demo"), reference_metrics("demo-no-mask")
    assert list(masked["step"]) == list(unmasked["step"]) == list(range(1, steps + 1))
    assert unmasked["tokens_trained"].mean() > 2 * masked["tokens_trained"].mean()


def test_the_shipped_lesson_04_run_is_its_cpu_tier_run_longer():
    """Lesson 04's reference: its CPU tier's recipe and world, more steps (else re-run: tools/ship_reference.py)."""
    from searchr1_lite.config import TrainConfig
    from searchr1_lite.plots import reference_metrics, reference_path
    from searchr1_lite.tiers import TIERS

    saved = json.loads(reference_path("lesson04.about.json").read_text())["config"]
    shipped = TrainConfig.from_dict(saved).to_dict()  # keys added since it ran: their defaults
    tier = TIERS["cpu"].settings("04", {})
    current = TrainConfig.load(tier["config"], tier["overrides"]).to_dict()
    for config in (shipped, current):
        config["optim"].pop("max_steps"), config.pop("output_dir"), config.pop("progress")
        if config["algorithm"] == "grpo":
            config.pop("ppo")  # settings a GRPO run never reads
    assert shipped == current
    metrics = reference_metrics("lesson04")
    assert len(metrics) > TrainConfig.load(tier["config"], tier["overrides"]).optim.max_steps
    assert metrics["eval_em"].dropna().iloc[-1] >= 0.5  # it learned: what a student's run is compared with
