"""`searchr1-lite demo`: the paper's claims in miniature, on a CPU, offline, in under half an hour.

    world (seeded) -> BM25 index -> Direct / RAG / Search (untrained) on held-out test questions
    -> phase 1: masked GRPO with LoRA on SmolLM2-135M, all of the world's kinds of question (single-hop learned)
    -> phase 2 from that policy: the kinds where the first passage says whether to search again, one worked
       example of each (--one-phase: none)
    -> each phase's policy on the same test questions
    [-> phase 1's training with inserted tokens trained on (--no-mask ablation)]
    [-> phase 1's training with PPO and a value head instead of GRPO (--algorithm ppo), same steps and budget]
    -> runs/demo/: report.md (tables), dynamics.png, samples.html, metrics and per-question results

Every stage writes its result before the next starts and is skipped when its result is already there, so an
interrupted demo (Ctrl-C, a closed laptop) goes on where it stopped when run again; training itself resumes from its
last checkpoint. `--fresh` starts over.

The demo keeps to a time budget (default 30 minutes, `--budget-minutes`): what the world, the baselines and the
final evaluations take is set aside; phase 1 stops after the last of its steps that fits in the rest, and phase 2
takes what phase 1 left. On 2 cores that is 10 steps and then about 22; the report says how many ran and why, and
when the budget cut a phase short, which `--budget-minutes` would give it all its steps (one core: about 64 minutes).

Deviations from the paper, each needed by a 135M model on a CPU and measured (docs/demo.md):
worked examples in every method's prompt (phase 1: two single-hop ones; phase 2, `world-author-chain`: one
single-hop and one two-hop), "<think>" as the start of the response, a clean
token boundary after inserted blocks (rollout._ids_before_tag), temperature 0.7, no KL term, LoRA on the top 15 of
30 layers.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import read_rows
from .data import QAExample
from .evaluate import evaluate_method
from .train import TrainConfig
from .world import parse_world_spec, world_spec

FOUR_KINDS = "world:seed=0,people=240"  # the world's four kinds of question: phase 1's (and --long's) training world
# two of them, "Where was P born?" (the passage names the city) and "Where was the author of W born?" (it names the
# author, to be searched next): the same corpus, where the first passage says whether to search again
TWO_KINDS = world_spec(**{**parse_world_spec(FOUR_KINDS), "kinds": "birthplace+author_birthplace"})
# Every phase 2 (docs/multi-hop/): half the questions two-hop, temperature 1.0 (more chances that one sample of a
# group searches twice and is right; at 0.7 none did), two turns at most, and for --long and --author-chain a third
# of the recipe's learning rate (at the recipe's own, single-hop questions began to be searched twice)
PHASE_2 = {"temperature": 1.0, "learning_rate": 1e-4, "max_turns": 2, "two_hop_share": 0.5}
# --author-chain's (section 17): the worked example of each kind, 64 tokens a turn (the chain's second turn is 42-45),
# and as many of 30 steps as the budget leaves
CHAIN_PHASE = {**PHASE_2, "template": "world-author-chain", "max_new_tokens": 64, "max_steps": 30}
# --long's and --author-chain's: the world's dev questions (up to 60, half two-hop) every 5 steps, keeping the
# evaluation whose lower EM of the two hop counts is best
KEEP_BEST = {"eval_every": 5, "eval_size": 60, "keep_best": True, "keep_best_by": "worst_hop"}
# `make demo`'s (sections 22-23): the chain's phase at the recipe's learning rate, which learned the chain in the 10
# steps 2 cores leave (1e-4 only began it), with all 12 of the world's dev questions every 2 steps and the best kept,
# because single-hop questions begin to draw a second search a step or two after the chain is learned; and a cost of
# 0.1 for each search after the first on a right answer (section 25), which kept those at about one search in 3 seeds
DEMO_PHASE = {**CHAIN_PHASE, **KEEP_BEST, "learning_rate": 3e-4, "eval_every": 2, "extra_search_cost": 0.1}


@dataclass
class DemoSettings:
    """Sizes of one demo. `quick()` is the few-minute first look (and what CI runs)."""

    world: str = TWO_KINDS  # the held-out test, the baselines and phase 2 draw from this world
    test_per_kind: int = 32  # held-out test questions per kind (single-hop, two-hop): at most 25 each in this world
    # phase 1 of the curriculum: the recipe, single-hop questions learned first. 10 steps answer the held-out questions
    # as 15 do, and leave phase 2 the 3-4 steps more that learned the chain in every seed (docs/multi-hop/, section 23)
    train: dict[str, Any] = dataclasses.field(default_factory=lambda: {"max_steps": 10})
    ablation: bool = False  # also train with inserted tokens in the loss (--no-mask)
    ppo: bool = False  # also train with PPO (--algorithm ppo): the same world, steps and time budget as GRPO
    # the whole demo's wall-clock budget; training takes what is left (None: all steps)
    budget_minutes: float | None = 30.0
    # the curriculum's phase 2: settings on top of the recipe, trained from phase 1's adapter, taking the budget
    # phase 1 left; `two_hop_share` is the world's (its training questions), the other keys a config's. None: no phase 2
    two_hop_phase: dict[str, Any] | None = dataclasses.field(default_factory=lambda: dict(DEMO_PHASE))
    # phase 1 trains on this world when it is not `world`: all four kinds of question, the same corpus
    phase_1_world: str | None = FOUR_KINDS

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(world="world:seed=0,people=60", test_per_kind=6,
                   train={"max_steps": 3, "prompts_per_step": 2, "group_size": 4, "max_new_tokens": 32,
                          "max_turns": 2, "eval_size": 4}, budget_minutes=None, two_hop_phase=None, phase_1_world=None)

    @classmethod
    def long(cls) -> DemoSettings:
        """The curriculum first tried (docs/multi-hop/): phase 1 is the recipe's 30 steps on the world's four kinds of
        question; phase 2 tries to teach the second search with the two-hop worked example, half the questions two-hop,
        temperature 1.0, a third of the learning rate, two searches at most. On 2 cores it learned the second search
        and then unlearned it (docs/demo-cpu-long/), so phase 2 evaluates the world's 60 dev questions (half of them
        two-hop) every 5 steps and keeps the evaluation whose lower EM of the two hop counts is best: each run traded
        one kind of question for the other (docs/multi-hop/)."""
        return cls(world=FOUR_KINDS, phase_1_world=None, train={"max_steps": 30}, budget_minutes=120.0,
                   two_hop_phase={**PHASE_2, "template": "world-two-hop-example", "max_steps": 40, **KEEP_BEST})

    @classmethod
    def author_chain(cls) -> DemoSettings:
        """`--long` on a world where the first passage decides (docs/demo-cpu-author-chain/): phase 1 is --long's;
        phase 2, the held-out test and the baselines keep two kinds of question, "Where was P born?" (the passage
        names the city) and "Where was the author of W born?" (it names the author, to be searched next). Phase 2
        gets the worked example of each (`world-author-chain`), 64 tokens a turn (the chain's second turn is 42-45,
        the recipe's cap 40) and 15 steps: on 2 cores it learned the second search (docs/multi-hop/, section 17)."""
        s = cls.long()
        s.phase_1_world, s.world = s.world, TWO_KINDS
        s.two_hop_phase = {**CHAIN_PHASE, **KEEP_BEST, "max_steps": 15}  # at 1e-4, evaluated every 5 steps and kept
        return s


RECIPE = "world-cpu"  # the demo's training recipe: searchr1_lite/configs/world-cpu.yaml, its one source


RUNS = {"train": "search-r1-lite", "train-two-hop": "search-r1-lite-two-hop", "train-no-mask": "search-r1-lite-no-mask",
        "train-ppo": "search-r1-lite-ppo"}
ADDED_RUNS = ("ablation", "ppo", "two_hop_phase")  # settings that add a run beside the others and change none of them


def train_config(settings: DemoSettings, out: Path, mask: bool = True, algorithm: str = "grpo") -> TrainConfig:
    folder = "train" if mask and algorithm == "grpo" else "train-ppo" if mask else "train-no-mask"
    cfg = TrainConfig.load(RECIPE).updated(settings.train, "demo settings")
    world = settings.phase_1_world or settings.world
    return cfg.updated({"questions": world, "corpus": world, "mask_inserted": mask,
                        "algorithm": algorithm, "output_dir": str(out / folder)}, "demo settings")


def two_hop_config(settings: DemoSettings, out: Path) -> TrainConfig:
    """Phase 2 of the curriculum: the recipe with `settings.two_hop_phase` on top, from phase 1's final adapter."""
    phase = dict(settings.two_hop_phase or {})
    share = phase.pop("two_hop_share", None)
    world = settings.world if share is None else world_spec(**{**parse_world_spec(settings.world),
                                                                "two_hop_share": share})
    return train_config(settings, out).updated({**phase, "questions": world, "corpus": settings.world,
                                                "adapter": str(out / "train" / "adapter"),
                                                "output_dir": str(out / "train-two-hop")}, "demo settings")


PHASE_1_STAGES = ("world", "baselines", "train-search-r1-lite", "evaluate-search-r1-lite")


def training_budget(budget_minutes: float, timings: dict[str, float], evals: Path,
                    before: tuple[str, ...] = ("world", "baselines")) -> float:
    """Seconds of the budget left for training: the whole budget less what the stages `before` it took (phase 2's:
    PHASE_1_STAGES), the final evaluation (as long as the untrained search policy's, which writes longer answers) and
    a margin. A run's own steps are not among them: train() sums those over resumes itself."""
    spent = sum(v for k, v in timings.items() if k in before)
    final_eval = json.loads((evals / "search-untrained.json").read_text())["seconds"]
    return max(0.0, 60 * budget_minutes - spent - 1.2 * final_eval - 30)


def held_out_set(world, per_kind: int, seed: int = 0) -> dict[str, list[QAExample]]:
    """A seeded, balanced subset of the world's test split: `per_kind` single-hop and two-hop questions."""
    rng = random.Random(seed)
    out = {}
    for name, hops in (("single-hop", 1), ("two-hop", 2)):
        pool = world.questions("test", hops)
        out[name] = rng.sample(pool, min(per_kind, len(pool)))
    return out


def _results(trajectories: dict, datasets: dict[str, list[QAExample]]) -> list[dict[str, Any]]:
    from .reward import trajectory_reward

    rows = []
    for name, examples in datasets.items():
        for t, e in zip(trajectories[name], examples):
            rows.append({"kind": name, "question_type": e.meta.get("kind"), "id": e.id, "question": e.question,
                         "gold": e.answers, "answer": t.answer,
                         "em": trajectory_reward(t.answer, e.answers), "searches": t.searches,
                         "cut_turns": sum(x.cut for x in t.turns),
                         "queries": t.queries, "response_length": t.response_length,
                         "well_formed": t.well_formed})
    return rows


def _write_json(path: Path, value: Any) -> None:
    from .offline import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(value, indent=1).encode())


def write_world(spec: str, folder: Path):
    """The world of `spec`, its corpus and question splits written to `folder` (corpus.jsonl, train/dev/test.jsonl):
    files a reader can open, and that `searchr1-lite train` can take."""
    from .world import load_world

    world = load_world(spec)
    folder.mkdir(parents=True, exist_ok=True)
    world.corpus.save(folder / "corpus.jsonl")
    for split, rows in world.splits.items():
        lines = [json.dumps({"id": q.id, "question": q.question, "golden_answers": q.answers, **q.meta}) for q in rows]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return world


RUN_KINDS = {"search-r1-lite-ppo": "PPO, masked", "search-r1-lite-no-mask": "no mask: inserted tokens trained on",
             "search-r1-lite-two-hop": "curriculum phase 2: two-hop, from phase 1's adapter"}  # else "masked"


def planned_runs(settings: DemoSettings, out: Path, cfg) -> list[tuple[Any, str]]:
    """(config, name) of each training run the settings ask for, in order; `cfg` is the first (masked GRPO)."""
    runs = [(cfg, "search-r1-lite")]
    if settings.two_hop_phase is not None:  # from phase 1's adapter, in the time phase 1 left
        runs.append((two_hop_config(settings, out), "search-r1-lite-two-hop"))
    if settings.ablation:  # the same number of steps as the masked run, whatever time that takes
        runs.append((train_config(settings, out, mask=False), "search-r1-lite-no-mask"))
    if settings.ppo:  # the same steps and time budget as GRPO's: which learns more per step, and per minute
        ppo_cfg = train_config(settings, out, algorithm="ppo")
        ppo_cfg.optim.time_budget_s = cfg.optim.time_budget_s
        runs.append((ppo_cfg, "search-r1-lite-ppo"))
    return runs


def _check_deletable(out: Path) -> None:
    """`--fresh` deletes only a demo's folder (one with its settings.json), never the folder it is run from."""
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise FileExistsError(f"--fresh would delete {out}, which holds the current folder; pick another --out")
    if any(out.iterdir()) and not (out / "settings.json").exists():
        n = sum(1 for _ in out.rglob("*"))
        raise FileExistsError(f"--fresh would delete {out}, which holds no demo (no settings.json) but {n} files and "
                              "folders; pick another --out, or delete it yourself")


class _Stages:
    """The demo's stages: each logged, timed and its time added to timings.json (summed over resumes: the budget
    counts what earlier calls spent)."""

    def __init__(self, out: Path, log):
        self.out, self.log, path = out, log, out / "timings.json"
        self.timings: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}

    @contextmanager
    def __call__(self, title: str, key: str, counted: bool = True):
        """Log `title`; on a normal exit add the time to `key`, if `counted`."""
        self.log(f"\n== {title} ==")
        t0 = time.perf_counter()
        yield
        if counted:
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0
            _write_json(self.out / "timings.json", self.timings)


@dataclass
class _Evaluations:
    """A policy on the held-out test questions, greedy, written once into eval/<name>.json (and .samples.html)."""

    folder: Path
    tests: dict[str, list[QAExample]]
    retriever: Any
    rollout: Any  # the recipe's RolloutConfig, for the baselines
    progress: bool
    log: Any

    def __post_init__(self):
        self.folder.mkdir(exist_ok=True)

    def done(self, *names: str) -> bool:
        return all((self.folder / f"{n}.json").exists() for n in names)

    def __call__(self, name: str, model, tokenizer, method: str, rollout=None) -> None:
        if self.done(name):
            self.log(f"{name}: done before ({self.folder / f'{name}.json'})")
            return
        t = time.perf_counter()
        config = dataclasses.replace(rollout if rollout is not None else self.rollout, temperature=0.0)
        _, trajectories = evaluate_method(model, tokenizer, method, self.tests, self.retriever, config, config.topk,
                                          style="world-examples", progress=self.progress)
        rows = _results(trajectories, self.tests)
        _write_json(self.folder / f"{name}.json", {"method": method, "rows": rows, "seconds": time.perf_counter() - t})
        (self.folder / f"{name}.samples.html").write_text(_samples_html(trajectories, self.tests, tokenizer, name),
                                                          encoding="utf-8")
        self.log(f"{name}: EM {sum(r['em'] for r in rows) / len(rows):.2f}, "
                 f"searches {sum(r['searches'] for r in rows) / len(rows):.2f} ({time.perf_counter() - t:.0f}s)")


def _open_folder(out: Path, settings: DemoSettings, fresh: bool) -> None:
    """`out`, emptied if `fresh`; refused if it holds a demo with other settings (its results would be mixed), or
    other files and no demo."""
    if fresh and out.exists():
        _check_deletable(out)
        shutil.rmtree(out)
    saved = out / "settings.json"
    if out.is_dir() and any(out.iterdir()) and not saved.exists():  # someone's folder: a demo would mix into it
        raise FileExistsError(f"{out} is not empty ({sum(1 for _ in out.iterdir())} entries) and holds no demo (no "
                              "settings.json): pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        before = json.loads(saved.read_text()) if saved.exists() else None
    except json.JSONDecodeError as e:
        raise ValueError(f"{saved}: damaged ({e}); pass --fresh to start this demo again, or another --out") from None
    if before is not None and _runs_differ(before, dataclasses.asdict(settings)):
        raise FileExistsError(f"{out} holds a demo with other settings ({saved}); pass --fresh or another --out")
    _write_json(saved, dataclasses.asdict(settings))


def run_demo(out: str | Path = "runs/demo", settings: DemoSettings | None = None, fresh: bool = False,
             progress: bool = True, log=print) -> Path:
    """Run (or finish) the demo in `out`; returns the path of report.md."""
    from .models import load_model
    from .report import write_report
    from .retrieval import LocalRetriever

    settings, out = settings or DemoSettings(), Path(out)
    _open_folder(out, settings, fresh)
    start_all, stage = time.perf_counter(), _Stages(out, log)
    # 1. the world and its index: redone on every resume (it is needed in memory), counted once in the budget
    with stage("world", "world", counted="world" not in stage.timings):
        world = write_world(settings.world, out / "world")
        retriever = LocalRetriever.build(world.corpus, "bm25")
        tests = held_out_set(world, settings.test_per_kind)
        log(f"{world.describe()}; test set: " + ", ".join(f"{len(v)} {k}" for k, v in tests.items()))
    cfg = train_config(settings, out)
    evaluate = _Evaluations(out / "eval", tests, retriever, cfg.rollout, progress, log)
    # 2. baselines with the untrained model
    with stage("baselines: Direct, RAG, Search (untrained)", "baselines"):
        if evaluate.done("direct", "rag", "search-untrained"):
            log(f"done before ({evaluate.folder}/direct.json, rag.json, search-untrained.json)")
        else:
            model, tokenizer = load_model(cfg.policy.model)
            model.eval()
            for name, method in (("direct", "direct"), ("rag", "rag"), ("search-untrained", "search")):
                evaluate(name, model, tokenizer, method)
            del model
    # 3. training (and the ablation), resumable, each run then evaluated
    if settings.budget_minutes is not None:
        cfg.optim.time_budget_s = training_budget(settings.budget_minutes, stage.timings, evaluate.folder)
        log(f"time budget {settings.budget_minutes:g} min: {cfg.optim.time_budget_s:.0f} s left for training "
            f"(at most {cfg.optim.max_steps} steps)")
    runs = planned_runs(settings, out, cfg)
    for run_cfg, name in runs:
        if not run_cfg.mask_inserted:  # the ablation trains as many steps as the masked run did, however long
            run_cfg.optim.max_steps = len(read_rows(Path(cfg.output_dir) / "metrics.jsonl"))
        if name == "search-r1-lite-two-hop" and settings.budget_minutes is not None:
            run_cfg.optim.time_budget_s = training_budget(settings.budget_minutes, stage.timings, evaluate.folder,
                                                          PHASE_1_STAGES)
        _train_and_evaluate(run_cfg, name, stage, evaluate, progress, log)
    # 4. report
    with stage("report", "report"):
        stage.timings["total (this call)"] = time.perf_counter() - start_all
        _write_json(out / "timings.json", stage.timings)  # the report lists it
        report = write_report(out, settings, [Path(c.output_dir) for c, _ in runs])
    if advice := json.loads((out / "summary.json").read_text())["budget_advice"]:  # as the report says it
        log(f"\n{advice}")
    log(f"\nwrote {report}\ndemo finished in {time.perf_counter() - start_all:.0f}s "
        f"(stages: {', '.join(f'{k} {v:.0f}s' for k, v in stage.timings.items() if k != 'total (this call)')})")
    return report


def _train_and_evaluate(run_cfg: TrainConfig, name: str, stage: _Stages, evaluate: _Evaluations, progress: bool,
                        log) -> None:
    """One of the demo's runs: trained (or resumed; skipped when its adapter is there), then evaluated."""
    import torch

    from .models import is_saved_adapter, load_policy
    from .train import train

    run = Path(run_cfg.output_dir)
    with stage(f"train ({RUN_KINDS.get(name, 'masked')})", f"train-{name}"):
        if is_saved_adapter(run / "adapter"):
            log(f"done before ({run})")
        else:
            run_cfg.progress = progress
            train(run_cfg, resume=(run / "latest").exists())
    if not is_saved_adapter(run / "adapter"):  # interrupted: train() saved a checkpoint; stop here, resumable
        raise KeyboardInterrupt(f"training stopped; run the demo again to resume from {run}")
    with stage(f"evaluate {name}", f"evaluate-{name}"):
        if evaluate.done(name):
            log(f"done before ({evaluate.folder / f'{name}.json'})")
        else:
            model, tokenizer = load_policy(run_cfg.policy.model, adapter=str(run / "adapter"),
                                           lora_layers=run_cfg.policy.lora_layers,
                                           device="cpu" if not torch.cuda.is_available() else None)
            model.eval()
            evaluate(name, model, tokenizer, "search", run_cfg.rollout)  # with the run's own prompt


# what a folder written before each of these settings existed ran with: no budget, no PPO run, no phase 2, one world
BEFORE_SETTING = {"budget_minutes": None, "ppo": False, "two_hop_phase": None, "phase_1_world": None}


def saved_settings(saved: dict) -> dict:
    """Settings a run folder (or a shipped reference) recorded, with what it ran where it predates a setting."""
    return {**dataclasses.asdict(DemoSettings()), **BEFORE_SETTING, **saved}


def _runs_differ(saved: dict, now: dict) -> bool:
    """Would these settings change a run the folder holds? Adding the ablation, PPO or phase 2 changes none."""
    saved = saved_settings(saved)
    return {k: v for k, v in saved.items() if k not in ADDED_RUNS} != {k: v for k, v in now.items()
                                                                          if k not in ADDED_RUNS}


def _samples_html(trajectories: dict, datasets: dict[str, list[QAExample]], tokenizer, title: str,
                  per_kind: int = 4) -> str:
    from .plots import trajectory_html
    from .reward import trajectory_reward

    parts = [f"<html><meta charset='utf-8'><body><h1>{title}</h1>"]
    for name, examples in datasets.items():
        parts.append(f"<h2>{name}</h2>")
        for t, e in list(zip(trajectories[name], examples))[:per_kind]:
            em = trajectory_reward(t.answer, e.answers)
            parts.append(f"<p><b>gold:</b> {e.answers[0]} — <b>EM {em:.0f}</b></p>")
            parts.append(trajectory_html(t, tokenizer, reward=em, show_prompt=False))
    return "\n".join(parts) + "</body></html>"
