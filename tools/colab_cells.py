"""The cells every lesson shares, written from one setting: the "Open in Colab" link and the install cell.

The setting is `repository` (and `branch`) under `[tool.searchr1_lite]` in pyproject.toml: the public git URL of
this repository. `make colab` writes both cells into every notebook and the links into the README; a test checks
that they are in step with the setting (tests/test_colab.py). While `repository` is empty there is no link, and
the install cell in Colab stops with an error that names REPO_URL (a fork or a mirror sets
$SEARCHR1_LITE_REPO_URL, or the `REPO_URL` line of the cell).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

from searchr1_lite.tiers import lesson_id

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LINK_TAG, INSTALL_TAG = "colab-link", "install"

INSTALL_CELL = '''\
# Colab: install this repository into this kernel (no restart needed). Elsewhere this cell does nothing: run
# `make install` first (torch's CPU build, the package, the offline stack), or `make lab`, which does it too.
import os
import subprocess
import sys

REPO_URL = os.environ.get("SEARCHR1_LITE_REPO_URL", {url})
if "google.colab" in sys.modules:
    import importlib

    if not REPO_URL:
        raise RuntimeError("REPO_URL is not set: put this repository's git URL in the REPO_URL line above (or "
                           "%env SEARCHR1_LITE_REPO_URL=...) and run this cell again")
    SRC = os.path.abspath("searchr1_lite-src")  # a folder "searchr1_lite" here would hide a failed install
    if not os.path.isdir(SRC):
        clone = subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, SRC], capture_output=True, text=True)
        if clone.returncode:
            raise RuntimeError(f"could not clone REPO_URL={{REPO_URL!r}}: {{clone.stderr.strip()}}")
    # a regular install, not -e: an editable install's .pth file is read only when Python starts; then the offline
    # models and data. A child's output does not reach the notebook, so a failure shows it in the error.
    for step in (["pip", "install", "-q", SRC], ["searchr1_lite.offline"]):
        done = subprocess.run([sys.executable, "-m", *step], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"`python -m {{' '.join(step)}}` failed:\\n{{(done.stdout + done.stderr)[-3000:]}}")
    importlib.invalidate_caches()  # let this running kernel see the package pip just wrote
'''


def setting() -> tuple[str, str]:
    """(repository URL, branch) from pyproject.toml's [tool.searchr1_lite]."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["searchr1_lite"]
    return tool.get("repository", "").strip(), tool.get("branch", "main").strip()


def colab_url(notebook: str, repository: str, branch: str) -> str | None:
    """Colab's address for a notebook of a GitHub repository; None for any other host (Colab opens GitHub only)."""
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", repository)
    return f"https://colab.research.google.com/github/{m[1]}/{m[2]}/blob/{branch}/notebooks/{notebook}" if m else None


def link_markdown(notebook: str, repository: str, branch: str) -> str:
    url = colab_url(notebook, repository, branch)
    if url:
        return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"
    return ("*Open in Colab*: this copy names no public GitHub repository yet (`repository` in pyproject.toml, "
            "then `make colab`).")


def _cell(kind: str, source: str, tag: str) -> dict:
    cell = {"cell_type": kind, "id": tag, "metadata": {"tags": [tag]},
            "source": source.rstrip("\n").splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def expected_cells(notebook: str) -> dict[str, dict]:
    repository, branch = setting()
    return {LINK_TAG: _cell("markdown", link_markdown(notebook, repository, branch), LINK_TAG),
            INSTALL_TAG: _cell("code", INSTALL_CELL.format(url=json.dumps(repository)), INSTALL_TAG)}


def tagged(nb: dict, tag: str) -> int | None:
    hits = [i for i, c in enumerate(nb["cells"]) if tag in c.get("metadata", {}).get("tags", [])]
    return hits[0] if hits else None


def write(path: Path) -> bool:
    """Put the link (after the title cell) and the install cell (after the link) into one notebook; True if changed."""
    nb = json.loads(path.read_text())
    before = json.dumps(nb)
    for position, (tag, cell) in enumerate(expected_cells(path.name).items(), start=1):
        i = tagged(nb, tag)
        if i is None:
            nb["cells"].insert(position, cell)
        else:
            nb["cells"][i] = cell
    if json.dumps(nb) == before:
        return False
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return True


def readme_links() -> str:
    """One line of the README: every lesson's Colab link, or why there are none."""
    repository, branch = setting()
    links = [(lesson_id(p.name), colab_url(p.name, repository, branch)) for p in NOTEBOOKS]
    if not links[0][1]:
        return link_markdown("", repository, branch)
    return "Open in Colab: " + " · ".join(f"[{n}]({url})" for n, url in links)


def tiers_table() -> str:
    """The README's tiers table, from searchr1_lite/tiers.py: settings and expected minutes / GB per lesson."""
    sys.path.insert(0, str(ROOT))
    from searchr1_lite.tiers import TIERS, expected

    rows = ["| tier | for | compute | " + " | ".join(f"lesson {lesson_id(p.name)}" for p in NOTEBOOKS) + " |",
            "|---|---|---|" + "---|" * len(NOTEBOOKS)]
    for tier in TIERS.values():
        cells = []
        for p in NOTEBOOKS:
            fig = expected(tier, lesson_id(p.name))
            cells.append(" · ".join(("under 1 min" if f.value < 0.5 else f"{f.value:.0f} min") if k == "time"
                                    else f"{f.value:.0f} {f.unit}" for k, f in fig.items())
                         + (" (measured)" if fig and fig["time"].measured else " (est.)" if fig else "—"))
        rows.append(f"| `{tier.name}` | {tier.what} | {tier.compute_dtype} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


REGIONS = {"colab-links": readme_links, "tiers-table": tiers_table}


def write_readme(path: Path = ROOT / "README.md") -> bool:
    """Rewrite each `<!-- name -->…<!-- /name -->` region of the README from its source."""
    text = original = path.read_text()
    for name, make in REGIONS.items():
        start_mark, end_mark = f"<!-- {name}: written by `make colab` -->", f"<!-- /{name} -->"
        start, end = text.index(start_mark) + len(start_mark), text.index(end_mark)
        text = text[:start] + "\n" + make() + "\n" + text[end:]
    if text != original:
        path.write_text(text)
    return text != original


if __name__ == "__main__":
    changed = [p.name for p in NOTEBOOKS if write(p)] + (["README.md"] if write_readme() else [])
    print("updated: " + (", ".join(changed) if changed else "nothing (already in step with pyproject.toml)"))
    sys.exit(0)
