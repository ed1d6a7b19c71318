"""The lessons as a static site in build/site/ (`make site`; open build/site/index.html), from the executed copies.

    python tools/build_site.py              # executes a lesson first only if its copy is missing or out of date
    python tools/build_site.py --no-execute # never executes: a missing or out-of-date copy is an error

The pages are the executed copies in build/executed/ (tools/execute_lessons.py; `make test` leaves them), shown as
they are by Sphinx with MyST-NB (the engine of Jupyter Book 1) and the book theme; MathJax is copied into the site,
so a page loads nothing from the network. The syllabus page is written here at each build, from the notebooks (what
each lesson teaches: its title and sections; its exercises: the cells holding `### BEGIN SOLUTION`, named by the
markdown above them) and from searchr1_lite.tiers (the time to run each lesson on each tier), so it has no numbers
or lists of its own to fall out of step. The prerequisites are the one thing written by hand, below.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from searchr1_lite.tiers import lesson_id

sys.path.insert(0, str(Path(__file__).resolve().parent))
from execute_lessons import NOTEBOOKS, ROOT, LessonFailed, copy_state, execute, executed_copy  # noqa: E402

SITE_SOURCES = ROOT / "docs" / "site"  # conf.py, index.md
SOURCE = ROOT / "build" / "site-src"  # what Sphinx reads: the sources above, the syllabus, the copies
SITE = ROOT / "build" / "site"
SOLUTION = "### BEGIN SOLUTION"
WIDGET = "application/vnd.jupyter.widget-view+json"

# What a lesson assumes a reader knows; the lessons do not say it themselves.
PREREQUISITES = {
    "01": "Python and NumPy; what a text embedding is (one vector per text) helps. No earlier lesson.",
    "02": "Lesson 01 (the `search(queries, k)` a rollout calls); how a causal language model generates text "
          "token by token, and what a tokenizer does.",
    "03": "Lesson 02 (trajectories and `gen_mask`); PyTorch autograd (a loss, `.backward()`, gradients); the "
          "policy-gradient idea: make rewarded samples more likely.",
    "03b": "Lesson 03 (the masked GRPO step); what a value function is (the expected reward from a state) helps. "
           "Optional: lesson 04 needs only lesson 03.",
    "04": "Lessons 02 and 03; what LoRA and 4-bit quantisation are; a GPU for a run that learns (a CPU runs the "
          "machinery).",
    "05": "Lesson 04 (a run folder and its metrics); exact match as the score.",
}
PROSE_WORDS_A_MINUTE, CODE_LINES_A_MINUTE = 200, 10  # reading time: prose, and code read closely enough to follow


class SiteNotBuilt(Exception):
    """An executed copy is missing or out of date and the build may not execute lessons, or Sphinx failed."""


def ensure_copies(may_execute: bool) -> None:
    """Execute the lessons whose copy is missing, out of date or failed; or, if that is not allowed, say which."""
    for nb in NOTEBOOKS:
        state = copy_state(nb)
        if state == "fresh" or (state == "failed" and not may_execute):
            continue  # a failed copy is shown as it failed when nothing may run; `make site` runs it again
        if not may_execute:
            raise SiteNotBuilt(f"{executed_copy(nb).relative_to(ROOT)}: {state}. Execute it first: `make site` "
                               f"(executes what is missing), or `make test` (executes every lesson)")
        print(f"executing {nb.relative_to(ROOT)} (copy {state})", flush=True)
        try:
            execute(nb)
        except LessonFailed as exc:
            print(exc, file=sys.stderr)  # the site shows the lesson up to its error


# --------------------------------------------------------------------------- the syllabus


def _exercise_title(markdown: str) -> str:
    """The exercise's heading in the cell above its code ("### Exercise: …", also below a section's heading), else
    that cell's first line."""
    lines = [s.strip() for s in markdown.splitlines() if s.strip()]
    line = next((s for s in lines if re.match(r"#+\s*exercise", s, re.I)), lines[0] if lines else "")
    return line.lstrip("#").strip()


def lesson_facts(nb_path: Path) -> dict:
    """Title, sections, reading time and exercises of one lesson, read from its notebook."""
    nb = nbformat.read(nb_path, as_version=4)
    title, sections, exercises, words, code_lines, above = nb_path.stem, [], [], 0, 0, ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            words += len(cell.source.split())
            for line in cell.source.splitlines():
                if line.startswith("# ") and title == nb_path.stem:
                    title = line[2:].strip()
                elif line.startswith("## ") and line[3:].strip() != "Parameters":
                    sections.append(re.sub(r"^\d+\.\s*", "", line[3:].strip()))  # "1. The corpus": a list item
            above = cell.source
        elif cell.cell_type == "code":
            code_lines += sum(1 for s in cell.source.splitlines() if s.strip())
            if SOLUTION in cell.source:
                name = re.sub(r"^exercise\s*\d*\s*[:.—-]?\s*", "", _exercise_title(above), flags=re.I)  # a list of them
                exercises.append(name[:1].upper() + name[1:] if name else f"the exercise in cell {i}")
    minutes = words / PROSE_WORDS_A_MINUTE + code_lines / CODE_LINES_A_MINUTE
    return {"title": title, "sections": sections, "exercises": exercises, "read_min": 5 * math.ceil(minutes / 5)}


def _run_time(tier, key: str) -> str:
    from searchr1_lite.tiers import expected

    try:
        fig = expected(tier, key).get("time")
    except ValueError:  # a lesson tiers.py does not know yet
        fig = None
    if fig is None:
        return "—"
    amount = f"{fig.value:.0f} {fig.unit}" if fig.value >= 1 else f"under 1 {fig.unit}"
    return amount if fig.measured else f"~{amount} (est.)"


def syllabus() -> str:
    from searchr1_lite.tiers import TIERS

    facts = {lesson_id(nb.name): (nb, lesson_facts(nb)) for nb in NOTEBOOKS}
    head = ["lesson", "read"] + [f"run: `{name}`" for name in TIERS]
    rows = [f"| [{f['title'].removeprefix('Lesson ')}](lessons/{nb.name}) | {f['read_min']} min | "
            + " | ".join(_run_time(tier, key) for tier in TIERS.values()) + " |"
            for key, (nb, f) in facts.items()]
    out = ["# Syllabus", "",
           "The lessons, each a notebook that runs top to bottom on any tier. Read them in order: each builds on the "
           "one before.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows, "",
           f"*Read*: the lesson's prose at {PROSE_WORDS_A_MINUTE} words a minute and its code at "
           f"{CODE_LINES_A_MINUTE} lines a minute, rounded up to 5 minutes; exercises take longer. *Run*: the time "
           "to run the whole notebook, from `searchr1_lite/tiers.py`: measured on the machine the lesson names, or "
           "estimated (est.; each lesson's first output prints the estimate's arithmetic); — where neither exists "
           "yet. The tiers:", ""]
    out += [f"- `{t.name}`: {t.what}; computes in {t.compute_dtype}" for t in TIERS.values()]
    for key, (nb, f) in facts.items():
        out += ["", f"## {f['title']}", "", f"[Open the lesson](lessons/{nb.name}).", "", "**What it teaches**:", ""]
        out += [f"{i}. {s}" for i, s in enumerate(f["sections"], 1)] or ["(no sections)"]
        out += ["", f"**Prerequisites**: {PREREQUISITES.get(key, 'the lessons before it.')}", ""]
        if f["exercises"]:
            out += [f"**Exercises** ({len(f['exercises'])}):", ""] + [f"{i}. {e}" for i, e in
                                                                        enumerate(f["exercises"], 1)]
        else:
            out += ["**Exercises**: none yet."]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- the build


def _mathjax_folder() -> Path:
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).parent / "static"


def _site_copy(executed: Path, out: Path) -> None:
    """The executed copy as a page shows it: the Colab install cell (tagged `install`, a no-op outside Colab) folded
    away, and no progress bars (ipywidgets: a static page could show only their text, which is their first frame)."""
    nb = nbformat.read(executed, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "install" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
    nbformat.write(nb, out)


def build(may_execute: bool = True) -> Path:
    """Write build/site/ from the executed copies; return its index.html."""
    ensure_copies(may_execute)
    shutil.rmtree(SOURCE, ignore_errors=True)
    shutil.copytree(SITE_SOURCES, SOURCE)
    (SOURCE / "lessons").mkdir()
    for nb in NOTEBOOKS:
        _site_copy(executed_copy(nb), SOURCE / "lessons" / nb.name)
    (SOURCE / "syllabus.md").write_text(syllabus())
    shutil.copytree(_mathjax_folder(), SOURCE / "_static" / "mathjax")
    shutil.rmtree(SITE, ignore_errors=True)  # no page left over from a lesson since renamed
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", "-d", str(ROOT / "build" / "site-doctrees"),
           str(SOURCE), str(SITE)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SiteNotBuilt(f"sphinx failed ({' '.join(cmd)}):\n{done.stderr[-4000:]}")
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)  # warnings
    return SITE / "index.html"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-execute", action="store_true", help="never execute a lesson (a missing copy is an error)")
    args = ap.parse_args()
    start = time.perf_counter()
    try:
        index = build(may_execute=not args.no_execute)
    except SiteNotBuilt as exc:
        raise SystemExit(str(exc)) from None
    print(f"site: {index.relative_to(ROOT)} ({time.perf_counter() - start:.0f} s)")
    failed = [nb.name for nb in NOTEBOOKS if copy_state(nb) == "failed"]
    if failed:
        raise SystemExit(f"the site shows these lessons up to the cell that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
