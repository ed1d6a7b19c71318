"""The lessons where their users open them: Colab's install cell, the one setting behind it, the parameters cell.

The simulated Colab: a Python where searchr1_lite is not importable (a fresh venv that sees this project's
dependencies but not the project), a fake `google.colab` module, REPO_URL a file:// clone of this checkout, and a
fresh working folder for /content. The notebook's own install cell runs there, and in that same process the
package must import and load the lesson's settings: no kernel restart.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import types
from pathlib import Path

import pytest

from searchr1_lite.tiers import lesson_id, pick_tier

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("colab_cells", ROOT / "tools" / "colab_cells.py")
colab_cells = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab_cells)


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _tagged_source(path, tag):
    hits = [c for c in _cells(path) if tag in c.get("metadata", {}).get("tags", [])]
    assert len(hits) == 1, f"{path.name}: {len(hits)} cells tagged {tag!r}, expected 1"
    return "".join(hits[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: lesson_id(p.name))
def test_each_lesson_has_the_shared_cells_from_the_one_setting(path):
    expected = colab_cells.expected_cells(path.name)
    for tag, cell in expected.items():
        assert _tagged_source(path, tag) == "".join(cell["source"]), f"{path.name}: run `make colab`"
    tags = [c.get("metadata", {}).get("tags", []) for c in _cells(path)]
    assert tags.index(["parameters"]) <= 5, "the parameters cell is near the top"
    text = path.read_text()
    assert "your-org" not in text and "example.com" not in text  # no placeholder URL


def test_the_readme_is_in_step_with_the_setting_and_the_tiers():
    text = (ROOT / "README.md").read_text()
    for name, make in colab_cells.REGIONS.items():
        start = text.index(f"<!-- {name}: written by `make colab` -->")
        assert make() in text[start : text.index(f"<!-- /{name} -->")], f"README region {name}: run `make colab`"


def test_colab_links_come_from_a_github_repository_setting():
    url = colab_cells.colab_url("01_build_index.ipynb", "https://github.com/ann/searchr1_lite.git", "main")
    assert url == "https://colab.research.google.com/github/ann/searchr1_lite/blob/main/notebooks/01_build_index.ipynb"
    assert colab_cells.colab_url("01_build_index.ipynb", "", "main") is None
    badge = colab_cells.link_markdown("02.ipynb", "https://github.com/ann/x", "dev")
    assert "colab.research.google.com/github/ann/x/blob/dev/notebooks/02.ipynb" in badge


def _run_install_cell_here(monkeypatch, tmp_path, url):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("SEARCHR1_LITE_REPO_URL", url)
    monkeypatch.chdir(tmp_path)
    exec(compile(_tagged_source(NOTEBOOKS[0], "install"), "install cell", "exec"), {})


def test_the_install_cell_without_a_repo_url_says_so(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match="REPO_URL is not set"):
        _run_install_cell_here(monkeypatch, tmp_path, "")


def test_the_install_cell_with_an_unreachable_repo_url_names_it(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match=r"could not clone REPO_URL='file:///nowhere/repo'"):
        _run_install_cell_here(monkeypatch, tmp_path, "file:///nowhere/repo")


def test_a_failed_pip_install_in_the_install_cell_shows_pips_own_message(monkeypatch, tmp_path):
    """In Colab a child process's output never reaches the cell: the error must carry pip's reason."""
    repo = tmp_path / "broken"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("[project\nname = 'broken'\n")  # not TOML: pip refuses it, naming it
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "broken"]):
        subprocess.run(git + args, cwd=repo, check=True)
    (tmp_path / "content").mkdir()
    with pytest.raises(RuntimeError, match=r"(?s)`python -m pip install -q .*searchr1_lite-src` failed:.*pyproject"):
        _run_install_cell_here(monkeypatch, tmp_path / "content", repo.as_uri())


def test_outside_colab_the_install_cell_does_nothing(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    exec(compile(_tagged_source(NOTEBOOKS[0], "install"), "install cell", "exec"), {})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the simulated Colab


@pytest.fixture(scope="module")
def repo_url(tmp_path_factory):
    """A git repository of this checkout's files as they are now (tracked and new, not ignored): file://..."""
    repo = tmp_path_factory.mktemp("remote") / "searchr1_lite"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + args, cwd=repo, check=True)
    return repo.as_uri()


@pytest.fixture(scope="module")
def dependencies(tmp_path_factory):
    """A folder with this environment's installed packages except searchr1_lite itself (links, not copies)."""
    deps = tmp_path_factory.mktemp("deps")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "searchr1_lite" in entry.name or entry.suffix == ".pth":
            continue  # the project (and its editable-install hooks) must come from the install cell
        (deps / entry.name).symlink_to(entry)
    return deps


DRIVER = """
import json, sys, types
try:
    import searchr1_lite
    sys.exit("searchr1_lite was importable before the install cell ran: " + searchr1_lite.__file__)
except ModuleNotFoundError:
    pass
sys.modules["google.colab"] = types.ModuleType("google.colab")
exec(compile(open(sys.argv[1]).read(), "install cell", "exec"), {})
import searchr1_lite
from searchr1_lite.tiers import lesson_id
from searchr1_lite.config import TrainConfig
from searchr1_lite.tiers import pick_tier
settings = pick_tier("cpu").settings(sys.argv[2])
if "config" in settings:
    TrainConfig.load(settings["config"], settings["overrides"])
print(json.dumps({"file": searchr1_lite.__file__, "settings": settings}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: lesson_id(p.name))
def test_the_install_cell_works_in_a_simulated_colab(path, repo_url, dependencies, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "project-dependencies.pth").write_text(str(dependencies) + "\n")
    content = tmp_path / "content"  # Colab's /content: the working folder, empty
    content.mkdir()
    (tmp_path / "cell.py").write_text(_tagged_source(path, "install"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SEARCHR1_LITE_REPO_URL"] = repo_url
    # `-c`: the working folder comes first on sys.path, as in a notebook kernel
    out = subprocess.run([str(venv / "bin" / "python"), "-c", DRIVER, str(tmp_path / "cell.py"), lesson_id(path.name)],
                         cwd=content, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(site)), got["file"]  # the installed package, not the clone or this checkout
    assert got["settings"] == pick_tier("cpu").settings(lesson_id(path.name))  # the installed copy's, this one's
