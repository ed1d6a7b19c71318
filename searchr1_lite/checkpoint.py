"""Checkpoints that survive a kill, and a resume that continues exactly.

A checkpoint holds the LoRA adapter (safetensors), PPO's critic if any (its head and optimizer, and a separate
critic's adapter), optimizer and scheduler state, every RNG state (Python, torch's
CPU generator and each CUDA device's), the step and data cursor, and the config. It is written to a temporary folder
and renamed, then `latest` is updated, so a kill during a save leaves the previous checkpoint intact. Resuming drops
the metrics rows written after the checkpoint, which the resumed run writes again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from .offline import atomic_write_bytes

log = logging.getLogger(__name__)


def save_checkpoint(run: Path, step: int, model, optimizer, scheduler, cursor: int, config: dict[str, Any],
                    critic=None) -> Path:
    final = run / f"checkpoint-{step}"
    tmp = run / f".checkpoint-{step}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "adapter")  # safetensors
    if critic is not None:
        torch.save(critic.state_dict(), tmp / "critic.pt")
        if critic.trunk is not None:
            critic.trunk.save_pretrained(tmp / "critic-adapter")
    state = {"step": step, "cursor": cursor, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             **torch_rng_state()}
    torch.save(state, tmp / "state.pt")
    (tmp / "python_rng.json").write_text(json.dumps(random.getstate(), default=list))
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_bytes(run / "latest", final.name.encode())
    return final


CHECKPOINT_FILES = ("state.pt", "python_rng.json", "adapter/adapter_config.json",  # what a resume reads
                    "adapter/adapter_model.safetensors")


def _missing(checkpoint: Path) -> list[str]:
    return [name for name in CHECKPOINT_FILES if not (checkpoint / name).is_file()]


def latest_checkpoint(run: Path) -> Path | None:
    """The checkpoint a resume starts from: the one `latest` names or, if that one is missing or lacks a file (deleted
    by hand, or damaged), the newest complete one, with a warning. None if the run has no checkpoint yet."""
    pointer = run / "latest"
    named = run / pointer.read_text().strip() if pointer.exists() else None
    lacks = _missing(named) if named is not None else []
    if named is not None and not lacks:
        return named
    why = f"{pointer} names {named.name}, which lacks {', '.join(lacks)}" if named else f"{pointer} is gone"
    steps = saved_steps(run)
    if not steps:
        if named is None:
            return None
        raise FileNotFoundError(f"{why}, and {run} has no complete checkpoint to resume from instead: start a new "
                                "output_dir")
    fallback = run / f"checkpoint-{steps[-1]}"
    log.warning("%s: resuming from %s, the newest complete checkpoint", why, fallback.name)
    return fallback


def restore_checkpoint(checkpoint: Path, optimizer, scheduler) -> tuple[int, int]:
    """Optimizer, scheduler and RNG states back from `checkpoint` (the adapter is loaded with the model); returns
    (step, cursor)."""
    try:  # tensors and plain containers only: a state.pt that holds code is refused, never run
        state = torch.load(checkpoint / "state.pt", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise ValueError(f"{checkpoint / 'state.pt'}: refused (not a checkpoint this package wrote: "
                         f"{type(e).__name__}: {first}). Delete {checkpoint} to resume from the newest checkpoint "
                         "before it, or start a new output_dir") from None
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_torch_rng(state)
    try:
        version, internal, gauss = json.loads((checkpoint / "python_rng.json").read_text())
    except (ValueError, TypeError) as e:  # cut short, or edited: the file named, with what to do
        raise ValueError(f"{checkpoint / 'python_rng.json'}: damaged ({e}). Delete {checkpoint} to resume from the "
                         "newest checkpoint before it, or start a new output_dir") from None
    random.setstate((version, tuple(internal), gauss))
    return state["step"], state["cursor"]


def restore_critic(checkpoint: Path, critic) -> None:
    """PPO's critic back from `checkpoint`: head, optimizer and (a separate critic's) adapter."""
    path = checkpoint / "critic.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no critic in this checkpoint (was the run trained with algorithm: grpo? "
                                "A run keeps the algorithm it started with)")
    critic.load_state_dict(torch.load(path, weights_only=True))
    if critic.trunk is not None:
        from .models import load_adapter_weights

        load_adapter_weights(critic.trunk, checkpoint / "critic-adapter")


def drop_rows_after(run: Path, step: int) -> list[dict[str, Any]]:
    """Metrics and sample rows past `step`: the resumed run writes them again (and a last line cut short goes).
    Returns the metrics rows kept (read once for both)."""
    kept: dict[str, list[dict[str, Any]]] = {"metrics.jsonl": []}
    if (run / "metrics.jsonl").exists():
        read_metrics(run / "metrics.jsonl")  # checked before any file is rewritten
    for path in (run / "metrics.jsonl", run / "samples.jsonl"):
        if path.exists():
            pairs = [(line, row) for line, row in _parsed_lines(path) if row["step"] <= step]
            atomic_write_bytes(path, "".join(line + "\n" for line, _ in pairs).encode())
            kept[path.name] = [row for _, row in pairs]
    return kept["metrics.jsonl"]


TEXT_METRICS = {"stopped", "collapse"}  # a metrics row's only text: why a run stopped, which collapse check fired


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """A run's metrics.jsonl rows, every value checked: a value edited by hand fails here, naming its row, not deep
    inside matplotlib or a resume's arithmetic."""
    rows = read_rows(path)
    for i, row in enumerate(rows, 1):
        bad = next((k for k, v in row.items() if k not in TEXT_METRICS and not isinstance(v, (int, float, type(None)))),
                   None)
        if bad:
            raise ValueError(f"{path}, row {i}: {bad} is {row[bad]!r}, not a number; repair or delete that row")
    return rows


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl or samples.jsonl ([] if there is none yet), also while the run writes it."""
    return [row for _, row in _parsed_lines(path)] if path.exists() else []


def _parsed_lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, row) pairs. A kill during a write, or a reader racing the writer, can leave the last line cut short:
    it is skipped with a warning (a resumed run writes that step again). A bad line before it is an error."""
    lines = path.read_text().splitlines()
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or type(row.get("step")) is not int:  # what a resume and a plot go by
                found = row.get("step") if isinstance(row, dict) else row
                raise ValueError(f"{path}, line {number}: a row needs its step number, not {found!r}; repair or "
                                 "delete that line")
            out.append((line, row))
        except json.JSONDecodeError as e:
            if number < len(lines):
                raise ValueError(f"{path}, line {number}: not a JSON row ({e.msg}); delete or repair that "
                                 "line") from None
            log.warning("%s: its last line (%d) is cut short, skipped: a write stopped by a kill, or one under way",
                        path, number)
    return out


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


def saved_steps(run: str | Path) -> list[int]:
    """The steps `run` has a complete checkpoint of, in order."""
    names = (p for p in Path(run).glob("checkpoint-*") if p.name.split("-")[1].isdigit() and not _missing(p))
    return sorted(int(p.name.split("-")[1]) for p in names)


def fork_point(run: Path, wanted: int) -> int:
    """A step to fork `run` at that has a checkpoint and a step after it to replay: `wanted` where it can be, else
    the nearest such checkpoint below it (or, if none, above it). A lesson's student may shorten the run or save
    less often than the lesson assumed; the lesson then forks elsewhere instead of failing."""
    run = Path(run)
    last = max((row["step"] for row in read_rows(run / "metrics.jsonl")), default=0)
    saved = saved_steps(run)
    usable = [s for s in saved if s < last]
    if not usable:
        raise ValueError(f"{run} has no checkpoint before its last step ({last}; checkpoints at: "
                         f"{', '.join(map(str, saved)) or 'none'}): run more steps than save_every, or save more "
                         "often (save_every=1), so that a step follows a checkpoint")
    below = [s for s in usable if s <= wanted]
    return max(below) if below else min(usable)


def fork_run(run: Path, step: int, out: Path) -> Path:
    """A copy of `run` as it stood after `step` (its config, metrics rows and checkpoint): resuming it replays the
    steps that followed, which is how a lesson shows that a resumed run continues exactly."""
    run, out = Path(run), Path(out)
    source = run / f"checkpoint-{step}"
    if _missing(source):
        kept = sorted(p.name for p in run.glob("checkpoint-*"))
        raise FileNotFoundError(f"{run} has no checkpoint at step {step} (it has: {', '.join(kept) or 'none'})")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(source, out / source.name)
    for name in ("config.json", "metrics.jsonl", "samples.jsonl"):
        if (run / name).exists():
            shutil.copy2(run / name, out / name)
    drop_rows_after(out, step)
    atomic_write_bytes(out / "latest", source.name.encode())
    return out
