"""The lessons' student copies, and a count of every lesson's exercises: `make student`.

    python tools/student_notebooks.py [OUT]          # OUT defaults to build/student (ignored by git)

The notebooks as committed are the instructor's copies: each exercise's solution sits between `### BEGIN SOLUTION`
and `### END SOLUTION` inside the code cell that defines the function to write, and CI runs them whole. The
student copy is the same notebook through nbconvert with nbgrader's `ClearSolutions` preprocessor, which replaces
each region by `# YOUR CODE HERE` / `raise NotImplementedError()` at the region's indentation (so a function keeps its
signature and docstring); the stub then names its function, for the student who runs on past an exercise. Only the
markers are used: no nbgrader metadata, database or course folder (`enforce_metadata=False`).

An exercise, for counting, is a code cell with a solution region followed by a code cell that calls one of the
checkers of `searchr1_lite.exercises` (`check_*`); a "predict, then run" question is a cell tagged `predict`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from searchr1_lite.tiers import lesson_id

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "raise NotImplementedError()"  # what ClearSolutions writes; the student copy names the function in it
PREDICT_TAG = "predict"
_CHECK_CALL = re.compile(r"\b(check_\w+)\(")
_DEF = re.compile(r"^\s*def (\w+)\(", re.M)
LINK_TAG = "colab-link"  # tools/colab_cells.py's: the repository's link opens the instructor's copy, solutions and all
STUDENT_LINK = ("*Open in Colab*: this is a student copy. In Colab, upload it (File → Upload notebook), or open it "
                "where your instructor published it: the repository's own Colab links open the instructor's copies, "
                "solutions included.")


@dataclass(frozen=True)
class Exercise:
    lesson: str  # "01", ...
    checker: str  # the `searchr1_lite.exercises` function its check cell calls
    function: str  # the function the student writes: the last `def` before the solution region
    cell_id: str  # the cell holding the solution region
    check_cell_id: str


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def exercises(path: Path) -> list[Exercise]:
    """The exercises of one lesson, in order: a solution region, then a cell calling a checker."""
    nb = nbformat.read(path, as_version=4)
    cells, found = _code_cells(nb), []
    for cell, after in zip(cells, cells[1:]):
        if BEGIN in cell.source and (m := _CHECK_CALL.search(after.source)):
            written = _DEF.findall(cell.source.split(BEGIN, 1)[0])
            found.append(Exercise(lesson_id(path.name), m.group(1), written[-1] if written else "",
                                  cell.get("id", ""), after.get("id", "")))
    return found


def predict_questions(path: Path) -> list[str]:
    """The ids of a lesson's "predict, then run" question cells."""
    nb = nbformat.read(path, as_version=4)
    return [c.get("id", "") for c in nb.cells if PREDICT_TAG in c.get("metadata", {}).get("tags", [])]


def student_version(path: Path) -> nbformat.NotebookNode:
    """The notebook with every solution region replaced by a stub (nbgrader's ClearSolutions, through nbconvert), and
    a Colab link cell that does not lead to the solutions."""
    from nbconvert.exporters import NotebookExporter
    from nbgrader.preprocessors import ClearSolutions

    exporter = NotebookExporter()
    exporter.register_preprocessor(ClearSolutions(enforce_metadata=False), enabled=True)
    body, _ = exporter.from_filename(str(path))
    nb = nbformat.reads(body, as_version=4)
    for cell in nb.cells:
        if LINK_TAG in cell.get("metadata", {}).get("tags", []):
            cell.source = STUDENT_LINK
        if cell.cell_type == "code" and STUB in cell.source:
            cell.source = _named_stubs(cell.source)
    left = [c.get("id") for c in nb.cells if BEGIN in c.source or END in c.source]
    if left:  # ClearSolutions raises on unbalanced markers; this catches a marker it did not recognise
        raise RuntimeError(f"{path.name}: solution markers left in cells {left}")
    nbformat.validate(nb)
    return nb


def _named_stubs(source: str) -> str:
    """Each bare stub says which function is not written yet: a student who runs on past an exercise meets it in a
    later cell that calls the function, where a bare `NotImplementedError:` said nothing."""
    done, rest = "", source
    while STUB in rest:
        before, rest = rest.split(STUB, 1)
        done += before
        name = (_DEF.findall(done) or ["this exercise"])[-1]  # the function the stub is in
        done += (f'raise NotImplementedError("{name} is not written yet: write it, run its cell, then its check '
                 '(stuck? the check names a stand-in)")')
    return done + rest


def write_student(out: Path, notebooks: list[Path] = NOTEBOOKS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        target = out / path.name
        nbformat.write(student_version(path), target)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "build" / "student"
    write_student(out)
    print(f"student copies in {out}:")
    for path in NOTEBOOKS:
        found = exercises(path)
        names = ", ".join(e.function for e in found) or "none yet"
        print(f"  {path.name}: {len(found)} exercises ({names}), {len(predict_questions(path))} predict-then-run")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
