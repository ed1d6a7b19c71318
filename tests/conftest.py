"""Shared fixtures: real (small) data from the offline stack, built once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
def minilm(small_corpus):
    from searchr1_lite.retrieval import LocalRetriever

    return LocalRetriever.build(small_corpus, "minilm")
