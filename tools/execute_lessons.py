"""Execute each lesson once into build/executed/: the copy the tests check and the rendered site shows.

    python tools/execute_lessons.py            # every lesson whose copy is missing or out of date
    python tools/execute_lessons.py --all      # every lesson

A lesson runs as `pytest --nbmake` ran it: a fresh kernel (this Python), the notebook's folder as the working
directory, at most 1200 s a cell, the tier from the environment (the Makefile's RUN_ENV picks `cpu`). One change:
the kernel draws figures inline, as Jupyter does, where RUN_ENV's MPLBACKEND=Agg would drop every `plt.show()`.

The copy, with its outputs, records the sha256 of the notebook it ran; it is out of date when the notebook's bytes
differ (a change to the package does not make it out of date: `make test` re-executes every lesson). A lesson that
fails still leaves its copy, marked failed and ending in the error, so the failing cell can be read and the site
shows it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from pathlib import Path

import nbformat

from searchr1_lite.tiers import lesson_id

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))  # the lessons; not folders below (nbmake took those too)
EXECUTED = ROOT / "build" / "executed"
CELL_TIMEOUT_S = 1200
INLINE_FIGURES = "module://matplotlib_inline.backend_inline"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class LessonFailed(Exception):
    """A lesson raised, timed out or lost its kernel; the message names the cell, its source and the traceback."""


def executed_copy(notebook: Path) -> Path:
    return EXECUTED / notebook.name


def source_sha256(notebook: Path) -> str:
    return hashlib.sha256(notebook.read_bytes()).hexdigest()


def copy_state(notebook: Path) -> str:
    """'fresh', 'missing', 'out of date' (the notebook changed since) or 'failed'."""
    path = executed_copy(notebook)
    if not path.exists():
        return "missing"
    meta = nbformat.read(path, as_version=4).metadata.get("searchr1_lite", {})
    if meta.get("source_sha256") != source_sha256(notebook):
        return "out of date"
    return "failed" if meta.get("failed") else "fresh"


def execute(notebook: Path, timeout: int = CELL_TIMEOUT_S) -> Path:
    """Run `notebook` top to bottom and write its executed copy; raise LessonFailed after writing it if a cell fails."""
    from nbclient import NotebookClient

    sha = source_sha256(notebook)
    nb = nbformat.read(notebook, as_version=4)
    current = {"index": None}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}},
                            on_cell_start=lambda cell, cell_index: current.update(index=cell_index))
    error = None
    try:
        client.execute(env={**os.environ, "MPLBACKEND": INLINE_FIGURES})
    except Exception as exc:  # CellExecutionError, CellTimeoutError, DeadKernelError: all reported the same way
        error = _describe_failure(notebook, nb, current["index"], exc)
    nb.metadata["searchr1_lite"] = {"source_sha256": sha, "failed": error is not None}
    out = executed_copy(notebook)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(out)  # a reader never sees half a copy
    if error:
        raise LessonFailed(f"{error}\n\n(the executed copy, up to the error: {_shown(out)})")
    return out


def _describe_failure(notebook: Path, nb, index: int | None, exc: Exception) -> str:
    """What nbmake shows: which cell, its source, and the traceback without terminal colours."""
    name = _shown(notebook)
    where = f"{name}, cell {index}" if index is not None else name
    if index is None:
        return f"{where}: {type(exc).__name__}: {_ANSI.sub('', str(exc))}"
    from nbclient.exceptions import CellExecutionError

    cell = nb.cells[index]
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    trace = _ANSI.sub("", "\n".join(errors[-1].get("traceback", []))) if errors else ""
    if not isinstance(exc, CellExecutionError):  # a timeout (the kernel interrupted) or a dead kernel: say which
        trace = f"{type(exc).__name__}: {_ANSI.sub('', str(exc)).strip().splitlines()[0]}\n{trace}"
    rule = "-" * 60
    return f"{where} failed:\n{rule}\n{cell.source}\n{rule}\n{trace}"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="execute every lesson, not only those out of date")
    ap.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 01 04 (default: all)")
    args = ap.parse_args()
    failed = []
    for nb in NOTEBOOKS:
        if args.lessons and lesson_id(nb.name) not in args.lessons:
            continue
        state = copy_state(nb)
        if state == "fresh" and not args.all:
            continue
        print(f"executing {_shown(nb)} (copy {state})", flush=True)
        try:
            execute(nb)
        except LessonFailed as exc:
            print(exc, file=sys.stderr)
            failed.append(nb.name)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
