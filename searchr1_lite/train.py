"""The training loop: questions -> group rollouts -> rewards -> masked GRPO step, with checkpoints that resume exactly.

    for step in range(max_steps):
        questions = next prompts_per_step questions, each repeated group_size times
        trajectories = rollout(policy, questions, retriever)            (lesson 02)
        rewards = exact match of each answer; advantages per group      (lesson 03)
        metrics = grpo_step(policy, trajectories, advantages)           (lesson 03)
        log one JSONL row; every save_every steps (and on Ctrl-C / SIGTERM) write a checkpoint

A checkpoint holds the LoRA adapter (safetensors), optimizer and scheduler state, RNG state, the step and data
cursor, and the config; it is written to a temporary folder and renamed, then `latest` is updated, so a kill during
a save leaves the previous checkpoint intact. Resuming drops metrics rows past the checkpoint and continues exactly:
every random draw is either seeded by (seed, step) or restored.

Simplified relative to the paper (verl, PPO/GRPO on 8 GPUs): one process, LoRA instead of full fine-tuning, one
update per batch of rollouts, the reference model = the base model (adapter off).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import signal
import time
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .offline import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """One run. Loadable from YAML (`configs/`), overridable with `--set key=value`, saved beside the run."""

    # policy
    model: str = "smollm2-135m-instruct"  # offline preset, local folder or hub id
    quantization: str | None = None  # None or "4bit" (bitsandbytes NF4)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str | list[str] = "all-linear"
    lora_layers: int | None = None  # LoRA on the top n layers only: the backward pass stops there (CPU speed)
    gradient_checkpointing: bool = False
    # data and retrieval
    questions: str = "fanoutqa"  # fanoutqa | nq_hotpotqa_train | path to jsonl | world[:seed=..,people=..]
    corpus: str = "wiki-vital"  # wiki-vital | wiki-18 | path | world[:...] (the synthetic world's passages)
    index: str | None = None  # a saved index folder; None = build BM25 over `corpus` in memory
    retriever_url: str | None = None  # use a running retrieval service instead
    eval_fraction: float = 0.2  # held-out share of the questions
    # GRPO (paper: lr 1e-6 full fine-tuning; LoRA wants ~1e-5 and up)
    max_steps: int = 3
    prompts_per_step: int = 2
    group_size: int = 5
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | cosine
    beta: float = 0.001
    adv_scale: str = "group"  # group | batch | none: the std that scales advantages ("none" = Dr. GRPO)
    clip_low: float = 0.2
    clip_high: float = 0.2
    loss_agg: str = "seq-mean-token-mean"
    micro_batch_size: int = 4
    max_grad_norm: float = 1.0
    mask_inserted: bool = True  # False = the paper's ablation: inserted passages are trained on too
    format_bonus: float = 0.0
    # rollout (paper: 4 turns, 500 tokens a turn, 500-token passages, top 3, temperature 1, top-p 0.95)
    template: str = "paper"  # paper | worked-example | world-examples | world-two-hop-example
    response_prefix: str = ""  # e.g. "<think>": the response starts with it (a deviation; paper: none)
    chat_template: bool = True  # False = plain text completion (a deviation; the authors apply the chat template)
    max_turns: int = 2
    max_new_tokens: int = 64
    max_obs_tokens: int = 200
    topk: int = 3
    temperature: float = 1.0
    top_p: float = 0.95
    time_budget_s: float | None = None  # stop early (adapter saved, evaluated) rather than end a step past this many
    # seconds of training (summed over resumes); None = run max_steps
    # bookkeeping
    output_dir: str = "runs/default"
    save_every: int = 1
    eval_every: int = 0  # 0 = only at the end
    eval_size: int = 8
    samples_per_eval: int = 2
    seed: int = 0
    progress: bool = True
    report_to: str = "none"  # none | tensorboard | wandb (their packages are not dependencies: install to use)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> TrainConfig:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        clean = {}
        for key, value in values.items():
            if key not in fields:
                close = [f for f in fields if f.startswith(key[:3])]
                raise ValueError(f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            clean[key] = _coerce(value, hints[key], f"{where}: {key}")
        return cls(**clean)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
        import yaml

        values: dict[str, Any] = {}
        if path:
            try:
                values = yaml.safe_load(Path(path).read_text()) or {}
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: not valid YAML ({e})") from None
            if not isinstance(values, dict):
                raise ValueError(f"{path}: expected a mapping of config keys")
        for item in overrides or []:
            if "=" not in item:
                raise ValueError(f"--set {item!r}: expected key=value")
            key, raw = item.split("=", 1)
            values[key.strip()] = yaml.safe_load(raw)
        return cls.from_dict(values, str(path or "config"))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    options = typing.get_args(hint) or (hint,)
    if value is None and type(None) in options:
        return None
    for t in options:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is float and isinstance(value, str):  # YAML 1.1 reads "2e-5" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if t in (int, str, bool) and type(value) is t:
            return value
        if typing.get_origin(t) is list and isinstance(value, list):
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in options)
    raise ValueError(f"{where} must be {names}, got {value!r}")


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(run: Path, step: int, model, optimizer, scheduler, cursor: int, cfg: TrainConfig) -> Path:
    final = run / f"checkpoint-{step}"
    tmp = run / f".checkpoint-{step}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "adapter")  # safetensors
    state = {"step": step, "cursor": cursor, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             **torch_rng_state()}
    torch.save(state, tmp / "state.pt")
    (tmp / "python_rng.json").write_text(json.dumps(random.getstate(), default=list))
    (tmp / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_bytes(run / "latest", final.name.encode())
    return final


def torch_rng_state() -> dict[str, Any]:
    """torch's generators: the CPU one and, on a GPU, every CUDA device's (LoRA dropout there draws from CUDA's)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": cuda}


def restore_torch_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_rng"])
    cuda = state.get("cuda_rng") or []  # absent in checkpoints written before it was saved
    if cuda and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            log.warning("the checkpoint holds the RNG state of %d CUDA devices, this machine has %d: not restored, "
                        "so the resumed run samples differently from a straight one", len(cuda),
                        torch.cuda.device_count())
        else:
            torch.cuda.set_rng_state_all(cuda)


def latest_checkpoint(run: Path) -> Path | None:
    pointer = run / "latest"
    if not pointer.exists():
        return None
    path = run / pointer.read_text().strip()
    if not (path / "state.pt").exists():
        raise FileNotFoundError(f"{pointer} names {path.name}, which is incomplete; delete {pointer} to start over")
    return path


# ---------------------------------------------------------------- the loop


def _make_retriever(cfg: TrainConfig):
    if cfg.retriever_url:
        from .server import RemoteRetriever

        return RemoteRetriever(cfg.retriever_url), None
    from .corpus import load_corpus
    from .retrieval import LocalRetriever

    if cfg.index:
        retriever = LocalRetriever.load(cfg.index)
        return retriever, retriever.corpus
    if cfg.corpus.startswith("world"):
        from .world import load_world

        corpus = load_world(cfg.corpus).corpus
    else:
        corpus = load_corpus(cfg.corpus)
    return LocalRetriever.build(corpus, "bm25"), corpus


def split_questions(cfg: TrainConfig, corpus) -> tuple[list, list]:
    """(train, held-out) questions: a world's own train/dev splits (by entity), else a seeded `eval_fraction` cut."""
    from .data import load_questions

    if cfg.questions.startswith("world"):
        from .world import load_world

        world = load_world(cfg.questions)
        return world.splits["train"], world.splits["dev"]
    examples = load_questions(cfg.questions, corpus if cfg.questions == "fanoutqa" else None)
    order = list(range(len(examples)))
    random.Random(cfg.seed).shuffle(order)
    n_eval = int(round(len(examples) * cfg.eval_fraction))
    return [examples[i] for i in order[n_eval:]], [examples[i] for i in order[:n_eval]]


def _template(cfg: TrainConfig) -> str:
    from .prompt import TEMPLATES

    if cfg.template not in TEMPLATES:
        raise ValueError(f"template must be one of {', '.join(TEMPLATES)}, not {cfg.template!r}")
    return TEMPLATES[cfg.template]


def _rollout_config(cfg: TrainConfig, seed: int):
    from .rollout import RolloutConfig

    return RolloutConfig(max_turns=cfg.max_turns, max_new_tokens=cfg.max_new_tokens, max_obs_tokens=cfg.max_obs_tokens,
                         topk=cfg.topk, temperature=cfg.temperature, top_p=cfg.top_p, seed=seed,
                         template=_template(cfg), response_prefix=cfg.response_prefix,
                         chat=cfg.chat_template)


class _Reporter:
    """Optional mirror of the metrics rows to TensorBoard or Weights & Biases."""

    def __init__(self, cfg: TrainConfig, run: Path):
        self.kind, self.sink = cfg.report_to, None
        try:
            if self.kind == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                self.sink = SummaryWriter(str(run / "tensorboard"))
            elif self.kind == "wandb":
                import wandb

                self.sink = wandb.init(project="searchr1-lite", dir=str(run), config=asdict(cfg), resume="allow")
            elif self.kind != "none":
                raise ValueError(f"report_to must be none, tensorboard or wandb, not {self.kind!r}")
        except ImportError as e:
            raise ValueError(f"report_to={self.kind} needs its package: pip install {self.kind} ({e})") from None

    def log(self, row: dict[str, Any]) -> None:
        if self.kind == "tensorboard":
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.sink.add_scalar(key, value, row["step"])
            self.sink.flush()
        elif self.kind == "wandb":
            self.sink.log(row, step=row["step"])


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def evaluate_policy(model, tokenizer, examples, retriever, cfg: TrainConfig, seed: int) -> tuple[dict, list]:
    """EM, searches and response length on held-out questions (greedy), and a few trajectories as samples."""
    from .reward import trajectory_reward
    from .rollout import rollout

    if not examples:
        return {}, []
    rcfg = dataclasses.replace(_rollout_config(cfg, seed), temperature=0.0)
    model.eval()
    res = rollout(model, tokenizer, [e.question for e in examples], retriever, rcfg)
    ems = [trajectory_reward(t.answer, e.answers) for t, e in zip(res.trajectories, examples)]
    ts = res.trajectories
    stats = {"eval_em": sum(ems) / len(ems), "eval_searches": sum(t.searches for t in ts) / len(ts),
             "eval_response_length": sum(t.response_length for t in ts) / len(ts)}
    samples = [{"question": t.question, "answer": t.answer, "gold": e.answers, "em": em,
                "text": tokenizer.decode(t.ids[t.prompt_len :]), "ids": t.ids, "gen_mask": t.gen_mask,
                "prompt_len": t.prompt_len}
               for t, e, em in list(zip(ts, examples, ems))[: cfg.samples_per_eval]]
    return stats, samples


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None, reward_fn=None) -> Path:
    """Run (or resume) training; returns the run folder. `stop_after` stops after that many steps of this call, as an
    interrupt would (checkpoint written): for tests and for splitting a run across sessions. `reward_fn(trajectory,
    example) -> float` replaces the exact-match reward (EM is still logged)."""
    from tqdm.auto import tqdm

    from .grpo import GRPOConfig, TrajectoryBatch, group_advantages, grpo_step
    from .models import load_policy
    from .reward import trajectory_reward
    from .rollout import rollout

    run = Path(cfg.output_dir)
    checkpoint = latest_checkpoint(run) if resume else None
    if not resume and (run / "metrics.jsonl").exists():
        raise FileExistsError(f"{run} already holds a run: pass --resume to continue it, or another output_dir")
    run.mkdir(parents=True, exist_ok=True)
    for partial in run.glob(".checkpoint-*.tmp*"):  # left by a process killed while saving: never complete
        shutil.rmtree(partial, ignore_errors=True)
    (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    reporter = _Reporter(cfg, run)  # before the slow part: a missing package fails at once

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_policy(
        cfg.model, quantization=cfg.quantization, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout, lora_targets=cfg.lora_targets, gradient_checkpointing=cfg.gradient_checkpointing,
        lora_layers=cfg.lora_layers, adapter=str(checkpoint / "adapter") if checkpoint else None)
    params = [p for p in model.parameters() if p.requires_grad]
    if torch.cuda.is_available():
        import bitsandbytes as bnb

        optimizer = bnb.optim.PagedAdamW8bit(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    def lr_factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    step, cursor = 0, 0
    metrics_path = run / "metrics.jsonl"
    if checkpoint:
        try:  # tensors and plain containers only: a state.pt that holds code is refused, never run
            state = torch.load(checkpoint / "state.pt", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
            raise ValueError(f"{checkpoint / 'state.pt'}: refused (not a checkpoint this package wrote: {type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else ''}). Delete {checkpoint} to resume from an "
                             f"earlier checkpoint, or start a new output_dir") from None
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_torch_rng(state)
        random.setstate(_as_python_rng(json.loads((checkpoint / "python_rng.json").read_text())))
        step, cursor = state["step"], state["cursor"]
    if resume:  # rows written after the checkpoint (or before the first one) will be written again
        for path in (metrics_path, run / "samples.jsonl"):
            if path.exists():
                rows = [r for r in path.read_text().splitlines() if r.strip() and json.loads(r)["step"] <= step]
                atomic_write_bytes(path, "".join(r + "\n" for r in rows).encode())

    retriever, corpus = _make_retriever(cfg)
    train_qs, eval_qs = split_questions(cfg, corpus)
    if not train_qs:
        raise ValueError(f"no training questions in {cfg.questions!r}")
    eval_qs = eval_qs[: cfg.eval_size]
    gcfg = GRPOConfig(beta=cfg.beta, adv_scale=cfg.adv_scale, clip_low=cfg.clip_low, clip_high=cfg.clip_high, loss_agg=cfg.loss_agg,
                      micro_batch_size=cfg.micro_batch_size, temperature=cfg.temperature,
                      max_grad_norm=cfg.max_grad_norm, max_response_tokens=cfg.max_turns * cfg.max_new_tokens + cfg.max_new_tokens)

    stop = {"now": False}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum, frame):
        stop["now"] = True

    for sig in handlers:
        try:
            signal.signal(sig, request_stop)
        except ValueError:  # not the main thread (e.g. some notebook runners): no signal handling
            pass
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step", disable=not cfg.progress)
    steps_this_call = 0
    step_seconds = [r.get("step_seconds", r["rollout_seconds"] + r["update_seconds"])  # kept rows of a resumed run
                    for r in map(json.loads, metrics_path.read_text().splitlines())] if metrics_path.exists() else []
    budget_stop = False
    try:
        while step < cfg.max_steps and not stop["now"]:
            step_start = time.perf_counter()
            picks = [train_qs[i] for i in pick_questions(len(train_qs), cursor, cfg.prompts_per_step, cfg.seed)]
            examples = [e for e in picks for _ in range(cfg.group_size)]

            start = time.perf_counter()
            model.eval()
            res = _rollout_fitting_memory(rollout, model, tokenizer, [e.question for e in examples], retriever,
                                          _rollout_config(cfg, cfg.seed * 100_003 + step), cfg.group_size)
            rollout_s = time.perf_counter() - start
            ts = res.trajectories
            rewards = torch.tensor([reward_fn(t, e) if reward_fn else
                                    trajectory_reward(t.answer, e.answers, t.well_formed, cfg.format_bonus)
                                    for t, e in zip(ts, examples)], dtype=torch.float32)
            ems = [trajectory_reward(t.answer, e.answers) for t, e in zip(ts, examples)]
            advantages = group_advantages(rewards, cfg.group_size, gcfg.adv_scale, gcfg.adv_eps)
            tensors = res.tensors(tokenizer.pad_token_id)
            loss_mask = tensors["gen_mask"]
            if not cfg.mask_inserted:  # ablation: every response token has a loss, inserted passages included
                loss_mask = tensors["attention_mask"].clone()
                for i, t in enumerate(ts):
                    loss_mask[i, : t.prompt_len] = 0
            batch = TrajectoryBatch(tensors["input_ids"], tensors["attention_mask"], loss_mask,
                                    tensors["logprobs"] if cfg.mask_inserted else None)
            start = time.perf_counter()
            m = _step_fitting_memory(grpo_step, model, batch, advantages, optimizer, gcfg)
            update_s = time.perf_counter() - start
            if m["skipped"]:
                log.warning("step %d: the loss or gradient norm is not finite; update skipped, weights unchanged "
                            "(metrics row has skipped=1). Repeated skips: lower learning_rate or max_grad_norm.", step + 1)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            cursor += cfg.prompts_per_step
            steps_this_call += 1
            turns = [turn for t in ts for turn in t.turns]
            row = {
                "step": step, "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
                "em": sum(ems) / len(ems),
                "response_length_mean": sum(t.response_length for t in ts) / len(ts),
                "response_length_max": max(t.response_length for t in ts),
                "total_length_mean": sum(len(t.ids) - t.prompt_len for t in ts) / len(ts),
                "searches_mean": sum(t.searches for t in ts) / len(ts),
                "valid_action_rate": sum(x.action.valid for x in turns) / max(1, len(turns)),
                "answered_rate": sum(t.answer is not None for t in ts) / len(ts),
                **{k: m[k] for k in ("loss", "kl", "entropy", "clip_fraction", "grad_norm", "tokens_trained", "skipped")},
                "micro_batch_size": gcfg.micro_batch_size,
                "lr": lr, "rollout_seconds": rollout_s, "update_seconds": update_s,
                "generated_tokens_per_s": res.generated_tokens / max(res.seconds_generate, 1e-9),
                "peak_memory_mb": _peak_memory_mb(),
                **_by_hops(ts, examples, ems),
            }
            so_far = step_seconds + [time.perf_counter() - step_start]
            budget_stop = step < cfg.max_steps and _over_budget(cfg, so_far, rollout_s)
            last = step == cfg.max_steps or budget_stop or (stop_after is not None and steps_this_call >= stop_after)
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps or budget_stop:
                stats, samples = evaluate_policy(model, tokenizer, eval_qs, retriever, cfg, seed=cfg.seed)
                row.update(stats)
                with open(run / "samples.jsonl", "a") as f:
                    for s in samples:
                        f.write(json.dumps({"step": step, **s}) + "\n")
            row["step_seconds"] = time.perf_counter() - step_start  # with the evaluation, if any
            step_seconds.append(row["step_seconds"])
            if budget_stop:
                row["stopped"] = f"time budget: {sum(step_seconds):.0f} s of {cfg.time_budget_s:.0f} s spent"
                log.warning("step %d of %d: stopping, the next step would end past time_budget_s=%.0f s (%.0f s "
                            "spent); the adapter is saved as the final one", step, cfg.max_steps, cfg.time_budget_s,
                            sum(step_seconds))
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            reporter.log(row)
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward_mean']:.2f}", searches=f"{row['searches_mean']:.1f}")
            if step % cfg.save_every == 0 or last or stop["now"]:
                save_checkpoint(run, step, model, optimizer, scheduler, cursor, cfg)
            if last:
                break
    finally:
        bar.close()
        for sig, handler in handlers.items():
            try:
                signal.signal(sig, handler)
            except ValueError:
                pass
    if step == cfg.max_steps or budget_stop:
        model.save_pretrained(run / "adapter")
    return run


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


def _over_budget(cfg: TrainConfig, step_seconds: list[float], rollout_seconds: float) -> bool:
    """Would one more step (the mean of the last three) plus the final evaluation (a rollout of eval_size greedy
    questions, estimated from this step's rollout) end past the time budget?"""
    if cfg.time_budget_s is None:
        return False
    recent = step_seconds[-3:]
    final_eval = rollout_seconds * cfg.eval_size / (cfg.prompts_per_step * cfg.group_size)
    return sum(step_seconds) + sum(recent) / len(recent) + final_eval > cfg.time_budget_s


_OOM_ADVICE = ("lower group_size, prompts_per_step or max_new_tokens, set gradient_checkpointing: true, or use "
               "quantization: 4bit")


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError)


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _rollout_fitting_memory(rollout, model, tokenizer, questions, retriever, rcfg, group_size: int):
    """Roll out all questions at once; on out-of-memory, in halves (whole groups where possible), down to one
    trajectory at a time, then stop with advice. Either way: one trajectory per question, in order (each part
    samples with its own seed, so a group split across parts still gets independent samples)."""
    from dataclasses import replace

    from .rollout import RolloutResult

    try:
        return rollout(model, tokenizer, questions, retriever, rcfg)
    except Exception as e:  # noqa: BLE001 - only out-of-memory is handled; the rest is re-raised
        if not _is_oom(e):
            raise
        if len(questions) == 1:
            raise RuntimeError(f"out of memory rolling out a single trajectory: {_OOM_ADVICE}") from e
    _free_memory()
    half = len(questions) // 2
    if group_size < len(questions) and half % group_size:
        half = max(group_size, half - half % group_size)
    log.warning("out of memory during the rollout of %d trajectories: retrying in parts of %d and %d",
                len(questions), half, len(questions) - half)
    parts = [_rollout_fitting_memory(rollout, model, tokenizer, qs, retriever, replace(rcfg, seed=rcfg.seed * 2 + 1 + i), group_size)
             for i, qs in enumerate((questions[:half], questions[half:]))]
    return RolloutResult([t for p in parts for t in p.trajectories], sum(p.seconds_generate for p in parts),
                         sum(p.seconds_search for p in parts), sum(p.generated_tokens for p in parts))


def _step_fitting_memory(grpo_step, model, batch, advantages, optimizer, gcfg):
    """One GRPO step; on out-of-memory, halve the micro-batch (for the rest of the run) and redo the step from the
    start (gradients dropped), down to micro-batch 1, then stop with advice."""
    while True:
        try:
            return grpo_step(model, batch, advantages, optimizer, gcfg)
        except Exception as e:  # noqa: BLE001
            if not _is_oom(e):
                raise
            optimizer.zero_grad(set_to_none=True)
            if gcfg.micro_batch_size == 1:
                raise RuntimeError(f"out of memory in the update at micro_batch_size 1: {_OOM_ADVICE}") from e
            _free_memory()
            gcfg.micro_batch_size = max(1, gcfg.micro_batch_size // 2)
            log.warning("out of memory in the update: micro_batch_size lowered to %d for the rest of the run",
                        gcfg.micro_batch_size)


def _by_hops(ts, examples, ems) -> dict[str, float]:
    """Searches and EM per number of hops, for questions that say theirs (the synthetic world's)."""
    out = {}
    for hops in sorted({e.meta.get("hops") for e in examples} - {None}):
        rows = [(t, em) for t, e, em in zip(ts, examples, ems) if e.meta.get("hops") == hops]
        out[f"searches_{hops}hop"] = sum(t.searches for t, _ in rows) / len(rows)
        out[f"em_{hops}hop"] = sum(em for _, em in rows) / len(rows)
    return out


def _as_python_rng(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def merge_adapter(run: str | Path, out: str | Path) -> Path:
    """Fold a run's final adapter into its base model and save a plain transformers folder."""
    from .models import load_policy

    cfg = TrainConfig.from_dict(json.loads((Path(run) / "config.json").read_text()))
    model, tokenizer = load_policy(cfg.model, adapter=str(Path(run) / "adapter"), device="cpu")
    merged = model.merge_and_unload()
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)

