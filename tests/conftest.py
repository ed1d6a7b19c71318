"""Shared fixtures: real (small) data from the offline stack, built once per session."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# `make test-fast` runs `-m "not slow"`: every test that loads the offline language model (SmolLM2), encodes a
# corpus or runs the demo carries the marker. Tests that use these fixtures get it here; the guard below fails a
# test that loads SmolLM2 or encodes a corpus without it, so the fast set cannot quietly grow slow.
SLOW_FIXTURES = {"minilm", "quick_run", "quick_demo"}
README = Path(__file__).resolve().parents[1] / "README.md"


# `make test` runs in two pytest-xdist workers (-n 2). A worker takes a whole test file at a time, and these files
# two by two, as the second reads what the first makes: the executed lessons the site is built from, and the quick
# demo that the README's commands run in (one run a session, not one a worker). These two units are the longest
# (about 10 minutes each), so they go first, one to each worker, and the other files fill in after them.
WORKER_UNITS = {"test_notebooks.py": "the lessons", "test_site.py": "the lessons",
                "test_demo.py": "the quick demo", "test_readme.py": "the quick demo"}


@pytest.hookimpl(optionalhook=True)  # optional: without pytest-xdist the tests run in one process as before
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class FilesAndUnits(LoadScopeScheduling):  # xdist's --dist loadfile, with the units above
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return WORKER_UNITS.get(Path(file).name, file)

    config.option.loadscopereorder = False  # collection order (below), not the most tests first
    return FilesAndUnits(config, log)


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # in a worker: the long units first (a stable sort keeps each file's
        items.sort(key=lambda item: item.path.name not in WORKER_UNITS)  # order, and the lessons before the site)


@pytest.fixture(autouse=True)
def _slow_work_needs_the_slow_marker(request, monkeypatch):
    if request.node.get_closest_marker("slow"):
        return
    import searchr1_lite.models as models
    import searchr1_lite.retrieval as retrieval

    def refuse(what):
        def call(*a, **k):
            raise AssertionError(f"{request.node.nodeid} {what}: mark it @pytest.mark.slow (see tests/conftest.py)")
        return call

    monkeypatch.setattr(models, "_smollm2_folder", refuse("loads SmolLM2"))
    monkeypatch.setattr(retrieval, "encode_corpus", refuse("encodes a corpus"))


@pytest.fixture(scope="session")
def wiki_vital():
    from searchr1_lite.corpus import load_corpus

    return load_corpus("wiki-vital")


@pytest.fixture(scope="session")
def small_corpus(wiki_vital):
    """400 real passages, including the ones the tests query for."""
    from searchr1_lite.corpus import Corpus

    wanted = {"Mona Lisa", "Louvre", "Leonardo da Vinci", "Mount Everest", "Apple Inc.", "Microsoft"}
    keep = [i for i, t in enumerate(wiki_vital.titles()) if t in wanted] + list(range(0, 10033, 26))[:394]
    keep = sorted(set(keep))
    return Corpus([wiki_vital.ids[i] for i in keep], [wiki_vital.contents[i] for i in keep], "wiki-small", "")


@pytest.fixture(scope="session")
def bm25_retriever(wiki_vital):
    from searchr1_lite.retrieval import LocalRetriever

    return LocalRetriever.build(wiki_vital, "bm25")


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory):
    """This session's own $SEARCHR1_LITE_CACHE for passage embeddings. `encode_corpus` keys its cache by encoder and
    corpus checksum, not by code: with ~/.cache's copy a passage-encoding bug would be read back from an older run and
    never seen. Encoding small_corpus afresh costs ~7 s once a session (400 passages, MiniLM, 2 CPU cores)."""
    return tmp_path_factory.mktemp("searchr1-lite-cache")


@pytest.fixture(scope="session")
def minilm(small_corpus, embedding_cache):
    """A MiniLM flat index over small_corpus, its passages encoded by this session's code (`embedding_cache`). A test
    that calls `encode_corpus` itself sets $SEARCHR1_LITE_CACHE to `embedding_cache` to read these vectors."""
    from searchr1_lite.retrieval import LocalRetriever

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEARCHR1_LITE_CACHE", str(embedding_cache))
        return LocalRetriever.build(small_corpus, "minilm")


def readme_shell_lines() -> list[tuple[str, list[str]]]:
    """Every command line of the ```bash blocks in the README, then in docs/guide.md (the commands it links to),
    continuation lines joined: (the line, its argv)."""
    text = "\n".join(path.read_text() for path in (README, README.parent / "docs" / "guide.md"))
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    parsed = [(line, shlex.split(line, comments=True)) for line in lines]
    return [(line, argv) for line, argv in parsed if argv]  # a comment-only line has no argv


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """The README's `searchr1-lite demo --quick` line, run as written in a fresh folder, once a session (the demo
    tests and the README test share it). Returns its output folder, runs/demo-quick in that folder."""
    from searchr1_lite.cli import main

    argv = next(argv for _, argv in readme_shell_lines() if argv[:3] == ["searchr1-lite", "demo", "--quick"])
    cwd, before = tmp_path_factory.mktemp("readme"), os.getcwd()
    os.chdir(cwd)
    try:
        assert main(argv[1:]) == 0, argv
    finally:
        os.chdir(before)
    return cwd / "runs" / "demo-quick"


def tiny_batch(tok, seed=0):
    """(input_ids, attention_mask, gen_mask) `[3, 40]`: two generated runs with an "inserted" run between them (18..24),
    the third row right-padded from 30. For the loss and the step, on tiny-qwen2 (random ids below 5000)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 5000, (3, 40), generator=g)
    attn = torch.ones_like(ids)
    attn[2, 30:] = 0  # a right-padded row
    ids[2, 30:] = tok.pad_token_id
    gen = torch.zeros_like(ids)
    gen[:, 10:18] = 1  # a generated run
    gen[:, 25:30] = 1  # another, after an "inserted" run at 18..24
    return ids, attn, gen
