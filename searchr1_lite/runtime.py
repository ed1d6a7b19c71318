"""What keeps a long training run alive around the loop: stop signals, the time budget, out-of-memory fallbacks,
trackers and memory figures. The loop itself (train.py) calls these and reads as the recipe."""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


class StopSignals:
    """Within `with StopSignals() as stop:`, a first Ctrl-C (or SIGTERM) sets `stop.requested` and says so at once,
    so the loop finishes its step and writes a checkpoint; a second one raises KeyboardInterrupt there and then (the
    last checkpoint stays valid: checkpoints are written to a temporary folder and renamed). The previous handlers
    come back on exit."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._request)
            except ValueError:  # not the main thread (e.g. some notebook runners): no signal handling
                pass
        return self

    def _request(self, signum, frame) -> None:
        if self.requested:
            self.__exit__()
            raise KeyboardInterrupt
        self.requested = True
        import os

        # os.write, not print: a handler that prints while tqdm is writing can raise "reentrant call"
        os.write(2, b"\nstopping after this step (a checkpoint is written); Ctrl-C again to stop now\n")

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}


class Tracker:
    """Optional mirror of the metrics rows to TensorBoard or Weights & Biases (`report_to`)."""

    def __init__(self, kind: str, run: Path, config: dict[str, Any]):
        self.kind, self.sink = kind, None
        try:
            if kind == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                self.sink = SummaryWriter(str(run / "tensorboard"))
            elif kind == "wandb":
                import wandb

                self.sink = wandb.init(project="searchr1-lite", dir=str(run), config=config, resume="allow")
        except ImportError as e:
            raise ValueError(f"report_to={kind} needs its package: pip install {kind} ({e})") from None

    def log(self, row: dict[str, Any]) -> None:
        if self.kind == "tensorboard":
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.sink.add_scalar(key, value, row["step"])
            self.sink.flush()
        elif self.kind == "wandb":
            self.sink.log(row, step=row["step"])


def peak_memory_mb() -> float | None:
    """This process's peak memory in MiB: CUDA's allocator on a GPU, else the peak resident set, which the kernel
    reports in KiB on Linux and in bytes on macOS (None on Windows, which has no `resource` module)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def over_budget(budget_s: float | None, step_seconds: list[float], rollout_seconds: float, eval_share: float) -> bool:
    """Would one more step (the mean of the last three) plus the final evaluation (a rollout `eval_share` times the
    size of this step's, estimated from it) end past the time budget?"""
    if budget_s is None:
        return False
    recent = step_seconds[-3:]
    return sum(step_seconds) + sum(recent) / len(recent) + rollout_seconds * eval_share > budget_s


OOM_ADVICE = ("lower group_size, prompts_per_step or max_new_tokens, set gradient_checkpointing: true, or use "
              "quantization: 4bit")


class OutOfMemory(RuntimeError):
    """Out of memory even at one trajectory, or micro-batch 1: the message says what to lower (the CLI prints it)."""


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def rollout_fitting_memory(rollout, model, tokenizer, questions, retriever, rcfg, group_size: int):
    """Roll out all questions at once; on out-of-memory, in halves (whole groups where possible), down to one
    trajectory at a time, then stop with advice. Either way: one trajectory per question, in order (each part
    samples with its own seed, so a group split across parts still gets independent samples)."""
    from .rollout import RolloutResult

    try:
        return rollout(model, tokenizer, questions, retriever, rcfg)
    except torch.OutOfMemoryError as e:
        if len(questions) == 1:
            raise OutOfMemory(f"out of memory rolling out a single trajectory: {OOM_ADVICE}") from e
    _free_memory()
    half = len(questions) // 2
    if group_size < len(questions) and half % group_size:
        half = max(group_size, half - half % group_size)
    log.warning("out of memory during the rollout of %d trajectories: retrying in parts of %d and %d",
                len(questions), half, len(questions) - half)
    parts = [rollout_fitting_memory(rollout, model, tokenizer, qs, retriever,
                                    replace(rcfg, seed=rcfg.seed * 2 + 1 + i), group_size)
             for i, qs in enumerate((questions[:half], questions[half:]))]
    return RolloutResult([t for p in parts for t in p.trajectories], sum(p.seconds_generate for p in parts),
                         sum(p.seconds_search for p in parts), sum(p.generated_tokens for p in parts))


def step_fitting_memory(step, optimizers, gcfg):
    """`step()`, one update (GRPO's or PPO's); on out-of-memory, halve the micro-batch (for the rest of the run: `step`
    reads `gcfg`) and redo the step from the start (gradients dropped), down to micro-batch 1, then stop with advice."""
    while True:
        try:
            return step()
        except torch.OutOfMemoryError as e:
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            if gcfg.micro_batch_size == 1:
                raise OutOfMemory(f"out of memory in the update at micro_batch_size 1: {OOM_ADVICE}") from e
            _free_memory()
            gcfg.micro_batch_size = max(1, gcfg.micro_batch_size // 2)
            log.warning("out of memory in the update: micro_batch_size lowered to %d for the rest of the run",
                        gcfg.micro_batch_size)
