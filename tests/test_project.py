"""The set-up files agree with each other: dependencies, the test command, stripped notebooks."""

import argparse
import json
import re
import shlex
import tomllib
from pathlib import Path

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


def test_readme_and_environment_yml_name_the_python_pyproject_requires():
    floor = re.fullmatch(r">=(3\.\d+)", _pyproject()["requires-python"]).group(1)
    assert f"Python ≥ {floor}" in (ROOT / "README.md").read_text()
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python={floor}" in env["dependencies"]


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


# ---------------------------------------------------------------- links

LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target "title")
GENERATED = {ROOT / "docs" / "site" / "syllabus.md"}  # tools/build_site.py writes it at each build


def _markdown(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text()


def _anchors(text: str) -> set[str]:
    """GitHub's heading ids (lower case, punctuation dropped, spaces as hyphens, -1, -2 for repeats) and <a id>."""
    found, seen, fenced = set(re.findall(r'<a (?:name|id)="([^"]+)"', text)), {}, False
    for line in text.splitlines():
        fenced ^= line.strip().startswith("```")
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not fenced:
            words = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1)).replace("`", "").replace("*", "")
            slug = re.sub(r"[^\w\- ]", "", words.strip().lower()).replace(" ", "-")
            seen[slug] = seen.get(slug, -1) + 1
            found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
    return found


SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "notebooks").glob("*.ipynb"))]


def test_every_relative_link_in_the_readme_docs_and_lessons_resolves():
    """A committed report once linked samples that its copy did not keep (43 dead links in 9 reports)."""
    broken = []
    for source in SOURCES:
        text = _markdown(source)
        for match in LINK.finditer(text):
            path, _, anchor = match.group(1).partition("#")
            if re.match(r"^[a-z]+:", path):  # https:, mailto:
                continue
            target = (source.parent / path).resolve() if path else source
            where = f"{source.relative_to(ROOT)}: ({match.group(1)})"
            if target in GENERATED:
                continue
            if not target.exists():
                broken.append(f"{where} has no file {target.relative_to(ROOT)}")
            elif anchor and target.suffix in (".md", ".ipynb") and anchor not in _anchors(_markdown(target)):
                broken.append(f"{where} has no heading #{anchor}")
    assert not broken, "\n".join(broken)


class _Refused(Exception):
    pass


def test_every_command_line_in_the_readme_docs_and_lessons_parses(monkeypatch, capsys):
    """A renamed flag, subcommand or choice leaves the commands that reports and lessons quote stale (the README's
    and docs/guide.md's also run, in test_readme.py). Each `searchr1-lite ...` they write is parsed by the CLI's own
    parser; a command quoted in part, short of an argument (`searchr1-lite eval --run`), passes."""
    from searchr1_lite.cli import build_parser

    def refuse(self, message):
        raise _Refused(message)

    monkeypatch.setattr(argparse.ArgumentParser, "error", refuse)
    parser, stale, parsed = build_parser(), [], 0
    for source in SOURCES:
        for match in re.finditer(r"searchr1-lite +[a-z][^`\n|&;#]*", _markdown(source)):
            line = match.group(0).rstrip(" .,:;)\\")
            try:
                argv = shlex.split(line)[1:]
            except ValueError:  # its quote closes on a later line
                continue
            try:
                parser.parse_args(argv)
            except _Refused as e:
                if "required" not in str(e) and "expected one argument" not in str(e):
                    stale.append(f"{source.relative_to(ROOT)}: {line!r}: {e}")
            except SystemExit:  # --help
                pass
            parsed += 1
    capsys.readouterr()
    assert parsed > 50 and not stale, "\n".join(stale)
