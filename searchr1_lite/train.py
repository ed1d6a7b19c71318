"""The training loop: questions -> group rollouts -> rewards -> masked GRPO (or PPO) step, with checkpoints that resume
exactly.

    for step in range(max_steps):
        questions = next prompts_per_step questions, each repeated group_size times
        trajectories = rollout(policy, questions, retriever)            (lesson 02)
        rewards = exact match of each answer; advantages per group      (lesson 03)
        metrics = grpo_step(policy, trajectories, advantages)           (lesson 03)
                  or, with algorithm: ppo, ppo_step(policy, critic, trajectories, rewards)  (lesson 03b)
        log one JSONL row; every save_every steps (and on Ctrl-C / SIGTERM) write a checkpoint

`train()` below is that loop. Its settings are one `TrainConfig` (config.py); checkpoints and resume are in
checkpoint.py; the time budget, out-of-memory fallbacks, stop signals and trackers in runtime.py. Every random draw
is either seeded by (seed, step) or restored from the checkpoint, so a resumed run continues exactly: bit for bit on
one CPU thread; on several, a kernel's result can differ in its last bit from one process to the next.

Simplified relative to the paper (verl, PPO/GRPO on 8 GPUs): one process, LoRA instead of full fine-tuning, one
update per batch of rollouts, the reference model = the base model (adapter off).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .checkpoint import (
    drop_rows_after,
    latest_checkpoint,
    read_rows,
    restore_checkpoint,
    restore_critic,
    save_checkpoint,
)
from .config import DataConfig, OptimConfig, TrainConfig
from .ppo import make_critic
from .runtime import StopSignals, Tracker, over_budget, peak_memory_mb, rollout_fitting_memory, step_fitting_memory

__all__ = ["TrainConfig", "best_evaluation", "evaluate_policy", "make_retriever", "merge_adapter", "pick_questions",
           "split_questions", "train", "train_step"]
log = logging.getLogger(__name__)

PPO_METRICS = ["value_loss", "value_clip_fraction", "critic_grad_norm", "value_mean", "explained_variance"]
# metrics that measure the machine, not the run: they differ between two runs of the same steps
TIMING_METRICS = ["rollout_seconds", "update_seconds", "step_seconds", "generated_tokens_per_s", "peak_memory_mb"]


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None, reward_fn=None,
          policy=None) -> Path:
    """Run (or resume) training; returns the run folder. `stop_after` stops after that many steps of this call, as an
    interrupt would (checkpoint written): for tests and for splitting a run across sessions. `reward_fn(trajectory,
    example) -> float` replaces the exact-match reward (EM is still logged). `policy`: a (LoRA model, tokenizer)
    already loaded with `cfg.policy`'s settings, trained in place from a fresh adapter (or the checkpoint's, or
    `policy.adapter`), so a notebook holds one copy of the model however many runs it trains."""
    from tqdm.auto import tqdm

    _refuse_unworkable(cfg)
    run, undo = _new_or_resumed_run(cfg, resume)
    opt = cfg.optim
    with _undone_if_set_up_fails(undo):  # a data, model or tracker mistake leaves no half-made run
        checkpoint = latest_checkpoint(run) if resume else None
        tracker = Tracker(cfg.report_to, run, cfg.to_dict())  # before the slow part: a missing package fails at once
        retriever, corpus = make_retriever(cfg.data)  # before the model: a data mistake fails in seconds
        train_qs, eval_qs = split_questions(cfg.data, corpus, cfg.seed)
        _check_training_questions(train_qs, cfg)
        pairs = _question_pairs(train_qs, cfg) if opt.paired_questions else None
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        model, tokenizer = policy_for(cfg, checkpoint) if policy is None else _reuse_policy(policy, cfg, checkpoint)
        optimizer, scheduler = make_optimizer(model, cfg)
        critic = make_critic(model, cfg.ppo, lambda: policy_for(cfg)[0]) if cfg.algorithm == "ppo" else None
        step, cursor = restore_checkpoint(checkpoint, optimizer, scheduler) if checkpoint else (0, 0)
        if checkpoint and critic is not None:
            restore_critic(checkpoint, critic)
        # the rows so far, for the collapse checks and the time budget over resumes
        history = drop_rows_after(run, step) if resume else read_rows(run / "metrics.jsonl")
        if (lost := step - max((r["step"] for r in history), default=0)) > 0:  # a row cut short at a kill
            log.warning("%s: the rows of the last %d step(s) before checkpoint-%d are missing (cut short); the run "
                        "goes on from that checkpoint, so its metrics.jsonl has no row for them", run, lost, step)
    gcfg = cfg.grpo_config()  # a copy, derived values fresh: out-of-memory may lower its micro-batch for the run
    spent = [r["step_seconds"] if "step_seconds" in r else r["rollout_seconds"] + r["update_seconds"]  # the budget
             for r in history]
    bar = tqdm(total=opt.max_steps, initial=step, desc="train", unit="step", disable=not cfg.progress)
    steps_this_call, budget_stop = 0, False
    with StopSignals() as stop:
        while step < opt.max_steps and not stop.requested:
            start = time.perf_counter()
            picks = [train_qs[i] for i in step_questions(pairs or len(train_qs), cursor, opt.prompts_per_step,
                                                         cfg.seed)]
            row = train_step(model, tokenizer, optimizer, retriever, picks, cfg, gcfg, step, reward_fn, critic)
            row["lr"] = scheduler.get_last_lr()[0]
            scheduler.step()
            step, cursor, steps_this_call = step + 1, cursor + len(picks), steps_this_call + 1
            row = {"step": step, **row}
            eval_share = cfg.eval_size / (opt.prompts_per_step * opt.group_size)
            budget_stop = step < opt.max_steps and over_budget(
                opt.time_budget_s, spent + [time.perf_counter() - start], row["rollout_seconds"], eval_share)
            last = step == opt.max_steps or budget_stop or (stop_after is not None and steps_this_call >= stop_after)
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == opt.max_steps or budget_stop:
                row.update(_evaluate_and_keep_samples(model, tokenizer, eval_qs, retriever, cfg, run, step))
            row["step_seconds"] = time.perf_counter() - start  # with the evaluation, if any
            spent.append(row["step_seconds"])
            if budget_stop:
                row["stopped"] = _budget_spent(step, opt, sum(spent))
            _record(run, row, history, tracker, bar)
            if step % cfg.save_every == 0 or last or stop.requested or (cfg.keep_best and "eval_em" in row):
                save_checkpoint(run, step, model, optimizer, scheduler, cursor, cfg.to_dict(), critic)
            if last:
                break
    bar.close()
    if step == opt.max_steps or budget_stop:
        _save_final_adapter(run, model, history, cfg)
    return run


def _budget_spent(step: int, opt: OptimConfig, spent: float) -> str:
    log.warning("step %d of %d: stopping, the next step would end past time_budget_s=%.0f s (%.0f s spent); the "
                "adapter is saved as the final one", step, opt.max_steps, opt.time_budget_s, spent)
    return f"time budget: {spent:.0f} s of {opt.time_budget_s:.0f} s spent"


def _record(run: Path, row: dict, history: list[dict], tracker: Tracker, bar) -> None:
    """A step's row, everywhere it goes: the history (the collapse checks read it), metrics.jsonl, the tracker and
    the progress bar."""
    history.append(row)
    _warn_on_collapse(run, history)  # names a checkpoint before this step's: saved already
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    tracker.log(row)
    bar.update(1)
    bar.set_postfix(reward=f"{row['reward_mean']:.2f}", searches=f"{row['searches_mean']:.1f}")


def best_evaluation(rows: list[dict], by: str = "eval_em") -> dict | None:
    """The evaluated metrics row with the best `evaluation_score`, the earliest of equal ones (the steps after it did
    not help); None when no row was evaluated."""
    evaluated = [r for r in rows if isinstance(r.get("eval_em"), (int, float))]
    return max(evaluated, key=lambda r: (evaluation_score(r, by), -r["step"])) if evaluated else None


def evaluation_score(row: dict, by: str = "eval_em") -> float:
    """An evaluated row's score for keep_best: its EM, or with `worst_hop` the lowest EM of its hop counts (its EM
    when its questions say no hop counts)."""
    if by == "worst_hop":
        return min([v for k, v in row.items() if re.fullmatch(r"eval_em_\dhop", k)], default=row["eval_em"])
    return row["eval_em"]


def _save_final_adapter(run: Path, model, history: list[dict], cfg: TrainConfig) -> None:
    """The run's `adapter`: the last step's weights, or with keep_best those of its best evaluation, saved as that
    step's checkpoint (train() saves a checkpoint at each evaluation); best.json says which."""
    best = best_evaluation(history, cfg.keep_best_by) if cfg.keep_best else None
    tmp = run / "adapter.tmp"  # written whole, then renamed: an `adapter` folder means a finished run (demo, --run)
    shutil.rmtree(tmp, ignore_errors=True)
    if best is None or best["step"] == history[-1]["step"]:
        model.save_pretrained(tmp)
    else:
        shutil.copytree(run / f"checkpoint-{best['step']}" / "adapter", tmp)
    shutil.rmtree(run / "adapter", ignore_errors=True)
    tmp.rename(run / "adapter")
    if best is not None:
        last = history[-1]
        kept = {"step": best["step"], "by": cfg.keep_best_by, "score": evaluation_score(best, cfg.keep_best_by),
                "last_step": last["step"], "last_score": evaluation_score(last, cfg.keep_best_by)
                if "eval_em" in last else None}
        (run / "best.json").write_text(json.dumps(kept, indent=1) + "\n")
        log.info("keep_best: the adapter is step %d's (%s %.3f); the last step, %d, scored %s", kept["step"],
                 kept["by"], kept["score"], kept["last_step"], kept["last_score"])


def _refuse_unworkable(cfg: TrainConfig) -> None:
    """Settings that a run would spend every step on and learn nothing from, or could not honour, refused before its
    folder is made. (A rollout or an evaluation may use them: `searchr1-lite rollout --temperature 0` decodes
    greedily.)"""
    if cfg.keep_best and not cfg.eval_every:
        raise ValueError("keep_best: true needs eval_every > 0 (with eval_every: 0 the only evaluation is the last "
                         "step's); set eval_every, e.g. --set eval_every=4")
    if cfg.rollout.temperature <= 0:
        raise ValueError(f"rollout.temperature must be above 0 for training, not {cfg.rollout.temperature!r}: the "
                         "update divides the logits by it (evaluations decode greedily on their own)")
    ones = [p for p in ("group_size", "two_hop_group_size") if getattr(cfg.optim, p) == 1]
    if cfg.algorithm == "grpo" and ones:
        raise ValueError(f"optim.{ones[0]} 1 gives GRPO nothing to learn: a group's one sample is its own baseline, "
                         "so its advantage is 0. Use 2 or more (the paper: 5), or algorithm=ppo, whose critic is the "
                         "baseline (the authors' PPO samples each question once)")


def _check_training_questions(train_qs: list, cfg: TrainConfig) -> None:
    if not train_qs:
        raise ValueError(f"no training questions in {cfg.data.questions!r}")
    if cfg.optim.two_hop_group_size is not None and not any(q.meta.get("hops") == 2 for q in train_qs):
        raise ValueError(f"two_hop_group_size: {cfg.data.questions!r} has no two-hop training question (one whose "
                         "meta says hops: 2); it needs the synthetic world's questions (questions: world)")


def train_step(model, tokenizer, optimizer, retriever, picks, cfg: TrainConfig, gcfg, step: int,
               reward_fn=None, critic=None) -> dict:
    """One step on the questions `picks`: group rollouts, rewards, the masked update (GRPO's group advantages, or
    with a `critic` PPO's). Returns the step's metrics row (without its step number, learning rate and timing of the
    whole step)."""
    from .grpo import TrajectoryBatch, group_advantages, grpo_step
    from .ppo import ppo_step
    from .reward import trajectory_reward
    from .rollout import rollout

    sizes = [group_size(e, cfg.optim) for e in picks]
    examples = [e for e, size in zip(picks, sizes) for _ in range(size)]
    start = time.perf_counter()
    model.eval()
    rcfg = dataclasses.replace(cfg.rollout, seed=cfg.seed * 100_003 + step)
    res = rollout_fitting_memory(rollout, model, tokenizer, [e.question for e in examples], retriever, rcfg,
                                 cfg.optim.group_size)
    rollout_s = time.perf_counter() - start
    ts = res.trajectories
    rewards = torch.tensor([reward_fn(t, e) if reward_fn else
                            trajectory_reward(t.answer, e.answers, t.well_formed, cfg.format_bonus, t.searches,
                                              cfg.extra_search_cost)
                            for t, e in zip(ts, examples)], dtype=torch.float32)  # [n]
    ems = [trajectory_reward(t.answer, e.answers) for t, e in zip(ts, examples)]
    advantages = group_advantages(rewards, sizes, gcfg.adv_scale, gcfg.adv_eps)  # [n]
    tensors = res.tensors(tokenizer.pad_token_id)
    loss_mask = tensors["gen_mask"]  # [n, s]
    if not cfg.mask_inserted:  # ablation: every response token has a loss, inserted passages included
        loss_mask = tensors["attention_mask"].clone()
        for i, t in enumerate(ts):
            loss_mask[i, : t.prompt_len] = 0
    batch = TrajectoryBatch(tensors["input_ids"], tensors["attention_mask"], loss_mask,
                            tensors["logprobs"] if cfg.mask_inserted else None)
    start = time.perf_counter()
    if critic is None:
        m = step_fitting_memory(lambda: grpo_step(model, batch, advantages, optimizer, gcfg), [optimizer], gcfg)
    else:
        m = step_fitting_memory(lambda: ppo_step(model, critic, batch, rewards, optimizer, gcfg, cfg.ppo),
                                [optimizer, critic.optimizer], gcfg)
    update_s = time.perf_counter() - start
    if m["skipped"]:
        log.warning("step %d: the loss or gradient norm is not finite; update skipped, weights unchanged "
                    "(metrics row has skipped=1). Repeated skips: lower learning_rate or max_grad_norm.", step + 1)
    rates = turn_rates(ts)
    if rates["cut_turn_rate"] >= 0.05:  # the suggestion doubles the cap: turns stop at their tag, so few cost more
        cap = cfg.rollout.max_new_tokens
        log.warning("step %d: %.0f %% of turns ran out of rollout.max_new_tokens (%d) before </search> or </answer>, "
                    "and a cut turn earns no reward. In the first steps, while the policy learns to close its tags, "
                    "a few are usual; if it goes on, raise the cap: --set max_new_tokens=%d on the command line; in a "
                    "lesson, max_new_tokens=%d among the overrides its tier prints", step + 1,
                    100 * rates["cut_turn_rate"], cap, 2 * cap, 2 * cap)
    return {
        "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()), "em": sum(ems) / len(ems),
        "response_length_mean": sum(t.response_length for t in ts) / len(ts),
        "response_length_max": max(t.response_length for t in ts),
        "total_length_mean": sum(len(t.ids) - t.prompt_len for t in ts) / len(ts),
        "searches_mean": sum(t.searches for t in ts) / len(ts),
        "answered_rate": sum(t.answer is not None for t in ts) / len(ts), **rates,
        **{k: m[k] for k in ("loss", "kl", "entropy", "clip_fraction", "grad_norm", "tokens_trained", "skipped")},
        **{k: m[k] for k in PPO_METRICS if k in m},
        "micro_batch_size": gcfg.micro_batch_size, "rollout_seconds": rollout_s, "update_seconds": update_s,
        "generated_tokens_per_s": res.generated_tokens / max(res.seconds_generate, 1e-9),
        "peak_memory_mb": peak_memory_mb(), **_by_question(ts, examples, ems),
    }


def turn_rates(trajectories) -> dict[str, float]:
    """Of all turns: the share whose action parsed (`valid_action_rate`), and the share that ran out of
    max_new_tokens before closing a tag (`cut_turn_rate`; a cut turn looks to GRPO like a wrong answer)."""
    turns = [turn for t in trajectories for turn in t.turns]
    n = max(1, len(turns))
    return {"valid_action_rate": sum(x.action.valid for x in turns) / n, "cut_turn_rate": sum(x.cut for x in turns) / n}


def group_size(example, opt) -> int:
    """How many times a step samples this question: `two_hop_group_size` for a two-hop one where set."""
    two_hop = opt.two_hop_group_size is not None and example.meta.get("hops") == 2
    return opt.two_hop_group_size if two_hop else opt.group_size


# ---------------------------------------------------------------- setup


@contextlib.contextmanager
def _undone_if_set_up_fails(undo: Callable[[], None]):
    """Undo what `_new_or_resumed_run` wrote if the set-up after it fails: a folder holding only a config.json would
    pass for a run that never started, and a resume that fails (say, on a damaged checkpoint) must not leave its new
    max_steps in the run's config.json."""
    try:
        yield
    except BaseException:
        undo()
        raise


def _new_or_resumed_run(cfg: TrainConfig, resume: bool) -> tuple[Path, Callable[[], None]]:
    """The run's folder, made or checked, with its config.json, and how to undo that: remove the folder this call
    made, or put back the config.json it replaced (or remove the one it wrote) in a folder that was there."""
    run = Path(cfg.output_dir)
    if run.exists() and not run.is_dir():
        raise FileExistsError(f"output_dir {run} is a file: a run is a folder; set output_dir to another path")
    if resume and not (run / "metrics.jsonl").exists():
        raise FileNotFoundError(f"nothing to resume in {run}: no run there (no metrics.jsonl). Drop --resume to start "
                                "it, or set output_dir to the run's folder")
    if not resume and (run / "metrics.jsonl").exists():
        raise FileExistsError(f"{run} already holds a run: pass --resume to continue it, or another output_dir")
    left = sorted(p.name for p in run.glob("*") if p.name in ("latest", "adapter") or p.name.startswith("checkpoint-"))
    if not resume and left:  # a run whose metrics.jsonl went: a new one would mix its checkpoints with the old ones
        raise FileExistsError(f"{run} holds another run's {', '.join(left[:3])}{', ...' if len(left) > 3 else ''} "
                              "(but no metrics.jsonl): move them away, or set another output_dir")
    config = run / "config.json"
    if resume and config.exists():
        _check_same_run(run, cfg)
    made_folder, before = not run.exists(), config.read_bytes() if config.exists() else None

    def undo() -> None:
        if made_folder:
            shutil.rmtree(run, ignore_errors=True)
        elif before is not None:
            config.write_bytes(before)
        else:
            config.unlink(missing_ok=True)

    run.mkdir(parents=True, exist_ok=True)
    for partial in run.glob(".checkpoint-*.tmp*"):  # left by a process killed while saving: never complete
        shutil.rmtree(partial, ignore_errors=True)
    config.write_text(json.dumps(cfg.to_dict(), indent=2))
    return run, undo


# What a resume may change: how long the run goes and how it reports. The rest is what it learns and from what; a
# resumed run with another LoRA rank, data or learning rate would not be the run its config.json describes.
RESUMABLE = {"optim.max_steps", "optim.time_budget_s", "save_every", "progress", "report_to", "output_dir"}


def _check_same_run(run: Path, cfg: TrainConfig) -> None:
    from .config import _flatten

    saved, now = (dict(_flatten(c.to_dict())) for c in (load_run_config(run), cfg))
    changed = [f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
               if k not in RESUMABLE and saved.get(k) != now.get(k)]
    if changed:
        raise ValueError(f"--resume continues {run} as its config.json set it up, and these settings differ: "
                         f"{'; '.join(changed)}. Resume with the run's own settings (a resume may change only "
                         f"{', '.join(sorted(RESUMABLE - {'output_dir'}))}), or start a new run in another output_dir")


def policy_for(cfg: TrainConfig, checkpoint: Path | None = None):
    """(LoRA model, tokenizer) as `cfg.policy` describes it (4-bit, LoRA, checkpointing), with a checkpoint's
    adapter if given: what train() trains, and what a lesson loads once and passes to train(policy=...)."""
    from .models import load_policy

    p = dataclasses.asdict(cfg.policy)
    start = _starting_adapter(cfg, checkpoint)
    p["adapter"] = str(start) if start else None
    return load_policy(p.pop("model"), **p)


def _starting_adapter(cfg: TrainConfig, checkpoint: Path | None) -> Path | None:
    """The adapter a run starts from: its checkpoint's when resuming, else `policy.adapter` (checked), else none."""
    if checkpoint:
        return checkpoint / "adapter"
    if cfg.policy.adapter is None:
        return None
    from .models import adapter_problem

    start = Path(cfg.policy.adapter)
    if problem := adapter_problem(start):
        raise FileNotFoundError(f"policy.adapter {start}: no saved adapter there ({problem}); give a finished run's "
                                "adapter folder, e.g. runs/demo/train/adapter")
    return start


def _reuse_policy(policy, cfg: TrainConfig, checkpoint: Path | None):
    from .models import load_adapter_weights, reset_adapter

    model, tokenizer = policy
    reset_adapter(model, cfg.seed)
    start = _starting_adapter(cfg, checkpoint)
    if start:
        load_adapter_weights(model, start)
    return model, tokenizer


def make_optimizer(model, cfg: TrainConfig):
    """AdamW (8-bit, paged, on a GPU) over the trainable parameters, and transformers' learning-rate schedule:
    linear warm-up from 0 over warmup_steps, then constant or cosine to 0 at max_steps."""
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    opt = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if torch.cuda.is_available():
        import bitsandbytes as bnb

        optimizer = bnb.optim.PagedAdamW8bit(params, lr=opt.learning_rate, weight_decay=opt.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=opt.learning_rate, weight_decay=opt.weight_decay)
    if opt.schedule == "cosine":
        return optimizer, get_cosine_schedule_with_warmup(optimizer, opt.warmup_steps, opt.max_steps)
    return optimizer, get_constant_schedule_with_warmup(optimizer, opt.warmup_steps)


def _warn_on_collapse(run: Path, history: list[dict]) -> None:
    """Run the collapse checks on the rows so far; a check that starts firing at the newest row is logged and named
    in that row's `collapse` field, with the last good checkpoint."""
    from .collapse import fired_at, warning

    lines = [warning(run, f) for f in fired_at(history)]
    for line in lines:
        log.warning("collapse check: %s", line)
    if lines:
        history[-1]["collapse"] = "; ".join(lines)


def make_retriever(data: DataConfig):
    """(retriever, corpus) for the run: a service (corpus None), a saved index, or BM25 built over `corpus`."""
    if data.retriever_url:
        from .server import RemoteRetriever

        return RemoteRetriever(data.retriever_url).ping(), None
    from .corpus import load_corpus
    from .retrieval import IndexMismatchError, LocalRetriever

    corpus = load_corpus(data.corpus)
    if not data.index:
        return LocalRetriever.build(corpus, "bm25"), corpus
    try:  # the questions are matched to `corpus`: an index over other passages would answer from elsewhere
        retriever = LocalRetriever.load(data.index, corpus)
    except IndexMismatchError as e:
        raise IndexMismatchError(f"data.index {data.index} and data.corpus {data.corpus!r} disagree: set corpus to "
                                 f"the index's, or rebuild the index over {data.corpus!r}. ({e})") from None
    return retriever, retriever.corpus


def split_questions(data: DataConfig, corpus, seed: int = 0) -> tuple[list, list]:
    """(train, held-out) questions: a world's own train/dev splits (by entity), else a seeded `eval_fraction` cut."""
    from .data import load_questions
    from .world import is_world_spec, load_world

    if is_world_spec(data.questions):
        _check_same_world(data)
        world = load_world(data.questions)
        return world.splits["train"], world.splits["dev"]
    examples = load_questions(data.questions, corpus if data.questions == "fanoutqa" else None)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = int(round(len(examples) * data.eval_fraction))
    return [examples[i] for i in order[n_eval:]], [examples[i] for i in order[:n_eval]]


def _check_same_world(data: DataConfig) -> None:
    """World questions over another world's passages (questions=world:seed=1, corpus=world) trained in silence on
    answers no search could find. Its people, places and names come from these settings; the question mix may differ."""
    import inspect

    from .world import is_world_spec, make_world, parse_world_spec

    if not data.corpus or not is_world_spec(data.corpus):
        return
    defaults = {k: p.default for k, p in inspect.signature(make_world).parameters.items()}
    q, c = ({k: {**defaults, **parse_world_spec(spec)}[k] for k in ("seed", "people", "cities", "countries")}
            for spec in (data.questions, data.corpus))
    if q != c:
        differ = ", ".join(f"{k} {q[k]} vs {c[k]}" for k in q if q[k] != c[k])
        raise ValueError(f"data.questions {data.questions!r} and data.corpus {data.corpus!r} are different worlds "
                         f"({differ}): no answer would be in the corpus; give both the same {', '.join(q)}")


def pick_questions(n: int, cursor: int, count: int, seed: int) -> list[int]:
    """Indices of the `count` questions after the first `cursor` served: epoch e (cursor // n) serves each of the n
    questions once, in its own seeded order, and a step that crosses into the next epoch continues in that one."""
    picks = []
    for c in range(cursor, cursor + count):
        epoch, position = divmod(c, n)
        order = list(range(n))
        random.Random(seed + epoch).shuffle(order)
        picks.append(order[position])
    return picks


def step_questions(questions: int | list[tuple[int, int]], cursor: int, count: int, seed: int) -> list[int]:
    """A step's question indices: `pick_questions` over n questions, or over pairs (`paired_questions`), `count // 2`
    of them, each pair's two side by side. `cursor` counts questions either way."""
    if isinstance(questions, int):
        return pick_questions(questions, cursor, count, seed)
    return [i for p in pick_questions(len(questions), cursor // 2, count // 2, seed) for i in questions[p]]


def _question_pairs(train_qs, cfg: TrainConfig) -> list[tuple[int, int]]:
    from .world import contrast_pairs

    if cfg.optim.prompts_per_step % 2:
        raise ValueError(f"paired_questions: prompts_per_step must be even (pairs of questions), not "
                         f"{cfg.optim.prompts_per_step}")
    pairs = contrast_pairs(train_qs)
    if not pairs:
        raise ValueError(f"paired_questions: {cfg.data.questions!r} has no two-hop question whose single-hop one is "
                         "there too; it needs the synthetic world's questions (questions: world)")
    return pairs


# ---------------------------------------------------------------- evaluation and after training


def evaluate_policy(model, tokenizer, examples, retriever, cfg: TrainConfig, seed: int) -> tuple[dict, list]:
    """EM, searches and response length on held-out questions (greedy), also per hop count and question type where
    the questions say theirs (`eval_em_2hop`), and a few trajectories as samples."""
    from .reward import trajectory_reward
    from .rollout import rollout

    if not examples:
        return {}, []
    model.eval()
    rcfg = dataclasses.replace(cfg.rollout, seed=seed, temperature=0.0)
    ts = rollout(model, tokenizer, [e.question for e in examples], retriever, rcfg).trajectories
    ems = [trajectory_reward(t.answer, e.answers) for t, e in zip(ts, examples)]
    stats = {"eval_em": sum(ems) / len(ems), "eval_searches": sum(t.searches for t in ts) / len(ts),
             **{f"eval_{k}": v for k, v in turn_rates(ts).items()},
             "eval_response_length": sum(t.response_length for t in ts) / len(ts),
             **{f"eval_{k}": v for k, v in _by_question(ts, examples, ems).items()}}  # the trade between hop counts
    samples = [{"question": t.question, "answer": t.answer, "gold": e.answers, "em": em,
                "text": tokenizer.decode(t.ids[t.prompt_len :]), "ids": t.ids, "gen_mask": t.gen_mask,
                "prompt_len": t.prompt_len, "searches": t.searches, "invalid_actions": t.invalid_actions}
               for t, e, em in list(zip(ts, examples, ems))[: cfg.samples_per_eval]]
    return stats, samples


def _evaluate_and_keep_samples(model, tokenizer, eval_qs, retriever, cfg: TrainConfig, run: Path, step: int) -> dict:
    stats, samples = evaluate_policy(model, tokenizer, eval_qs[: cfg.eval_size], retriever, cfg, seed=cfg.seed)
    with open(run / "samples.jsonl", "a") as f:
        for s in samples:
            f.write(json.dumps({"step": step, **s}) + "\n")
    return stats


def _by_question(ts, examples, ems) -> dict[str, float]:
    """Searches and EM per number of hops (`em_2hop`) and per question type (`em_birth_country`), for questions that
    say theirs (the synthetic world's: `world.QUESTION_TEMPLATES`)."""
    out = {}
    for key, name in (("hops", "{}hop"), ("kind", "{}")):
        for value in sorted({e.meta.get(key) for e in examples} - {None}):
            rows = [(t, em) for t, e, em in zip(ts, examples, ems) if e.meta.get(key) == value]
            out[f"searches_{name.format(value)}"] = sum(t.searches for t, _ in rows) / len(rows)
            out[f"em_{name.format(value)}"] = sum(em for _, em in rows) / len(rows)
    return out


def load_run_config(run: str | Path) -> TrainConfig:
    """The config a run was trained with (its config.json)."""
    path = Path(run) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; --run takes a folder that `searchr1-lite train` wrote")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON config ({e}); `searchr1-lite train` wrote it, so a hand edit broke "
                         "it") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object of config sections, got a {type(values).__name__}")
    return TrainConfig.from_dict(values, str(path))


def merge_adapter(run: str | Path, out: str | Path) -> Path:
    """Fold a run's final adapter into its base model and save a plain transformers folder."""
    from .models import load_policy

    cfg = load_run_config(run)
    model, tokenizer = load_policy(cfg.policy.model, adapter=str(Path(run) / "adapter"), device="cpu")
    merged = model.merge_and_unload()
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)
