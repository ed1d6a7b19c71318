"""Every lesson, executed once, top to bottom: what `pytest --nbmake` did, keeping the executed copy.

The copies (build/executed/, with outputs) are what the rendered site shows (tools/build_site.py, tests/test_site.py),
so `make test` executes each lesson exactly once. The tier comes from the environment: the Makefile's RUN_ENV
picks `cpu`. A failure shows the failing cell's source and traceback.
"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import execute_lessons  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("notebook", execute_lessons.NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_runs_top_to_bottom(notebook):
    try:
        executed = execute_lessons.execute(notebook)
    except execute_lessons.LessonFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    # what a student reads: no third-party deprecation notices between the lesson's outputs (quiet_third_party)
    cells = json.loads(executed.read_text())["cells"]
    stderr = ["".join(o["text"]) for c in cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    noise = ("FutureWarning", "deprecated", "publisher trust check")
    assert not [text for text in stderr if any(n in text for n in noise)], stderr
