"""Retrieval speed: encoding, index build, exact vs approximate search, HTTP vs in-process.

Prints one JSON object, then a one-line summary. All numbers are medians of repeated runs measured side by side
in this one run (machines here are noisy; compare ratios, not absolute numbers across runs); the services it times
run in processes of their own, as deployed.

Search is measured on three sets of 384-dim unit vectors, queried with 64 real questions where the vectors are real:
  1. real: the 10,033 wiki-vital passages encoded by all-MiniLM-L6-v2 (cached after the first run, 3-4 min);
  2. real + Gaussian: topped up to 100k with draws from a Gaussian of the real vectors' mean and covariance
     (same spectrum, no cluster structure: conservative, harder for HNSW than real text);
  3. clustered synthetic: 1,000 clusters in a 64-dim subspace (a friendly model).
The HNSW goal is read at the fastest efSearch whose recall@10 against exact search is >= 0.95.
Encoding is measured on real passages; HTTP overhead on BM25 over wiki-vital, 64 questions a request, and the
service's own cost with canned results: at once, and after a sleep as long as the search (the client's wake-up).

    python benchmarks/bench_retrieval.py [--n 100000] [--repeats 5] [--quick] [--json benchmarks/results/retrieval.json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import numpy as np
from _child import free_port, report, start_service, stop_service

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_vectors(n: int, seed: int, dim: int = 384, intrinsic: int = 64, clusters: int = 1000) -> np.ndarray:
    """Clusters in a 64-dim subspace of 384 dims, plus a little isotropic noise (a friendly model of embeddings)."""
    rng = np.random.default_rng(0)  # the same subspace and clusters for corpus and queries
    basis = np.linalg.qr(rng.standard_normal((dim, intrinsic)))[0].astype(np.float32)  # [dim, intrinsic]
    centres = rng.standard_normal((clusters, intrinsic)).astype(np.float32)
    r = np.random.default_rng(seed)
    z = centres[r.integers(0, clusters, n)] + 0.7 * r.standard_normal((n, intrinsic)).astype(np.float32)
    return unit(z @ basis.T + 0.02 * r.standard_normal((n, dim)).astype(np.float32))


def real_spectrum_vectors(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The real vectors, topped up to n with draws from a Gaussian of their mean and covariance (no clusters:
    a conservative model, harder for HNSW than real text)."""
    if n <= len(real):
        return real[:n]
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(np.cov(real.T) + 1e-6 * np.eye(real.shape[1]))
    extra = real.mean(0) + rng.standard_normal((n - len(real), real.shape[1])) @ chol.T
    return np.vstack([real, unit(extra)])


def bench_search(name: str, vectors: np.ndarray, queries: np.ndarray, repeats: int) -> dict:
    import faiss

    from searchr1_lite.retrieval import DenseIndex

    n, dim = vectors.shape
    out: dict = {"data": name, "n": n, "dim": dim, "queries": len(queries)}
    start = time.perf_counter()
    flat = DenseIndex.build(vectors, "flat")
    out["build_s_flat"] = time.perf_counter() - start
    start = time.perf_counter()
    hnsw = DenseIndex.build(vectors, "hnsw")
    out["build_s_hnsw"] = time.perf_counter() - start
    faiss_flat = faiss.IndexFlatIP(dim)
    faiss_flat.add(np.ascontiguousarray(vectors))

    for label, fn in {"flat": flat.search, "faiss_flatip": faiss_flat.search}.items():
        for batch in (1, 64):
            q = queries[:batch]
            out[f"qps_{label}_b{batch}"] = batch / median_time(lambda: fn(q, 10), repeats)
    out["flat_vs_faiss_b64"] = out["qps_flat_b64"] / out["qps_faiss_flatip_b64"]
    _, exact = flat.search(queries, 10)
    out["hnsw"] = []
    for ef in (16, 32, 64, 128):
        hnsw.index.hnsw.efSearch = ef
        _, approx = hnsw.search(queries, 10)
        qps = len(queries) / median_time(lambda: hnsw.search(queries, 10), repeats)
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))
        out["hnsw"].append({"ef_search": ef, "recall@10": recall, "qps_b64": qps,
                            "speedup_vs_flat": qps / out["qps_flat_b64"]})
    ok = [h for h in out["hnsw"] if h["recall@10"] >= 0.95]
    out["hnsw_best_at_recall_0.95"] = max(ok, key=lambda h: h["qps_b64"]) if ok else None
    return out


def bench_encode(n: int) -> dict:
    from searchr1_lite.corpus import load_corpus
    from searchr1_lite.retrieval import DenseEncoder

    corpus = load_corpus("wiki-vital")
    texts = list(corpus.contents[:n])
    encoder = DenseEncoder("minilm")
    start = time.perf_counter()
    encoder.encode_passages(texts, progress=False)
    seconds = time.perf_counter() - start
    return {"encode_passages": n, "encode_passages_per_s": n / seconds,
            "encode_full_wiki_vital_est_s": len(corpus) / (n / seconds)}


def bench_bm25_and_http(repeats: int) -> dict:
    """The service runs in its own process (as deployed), so client and server do not share a GIL."""
    import tempfile

    from searchr1_lite.corpus import load_corpus
    from searchr1_lite.data import fanoutqa_subquestions
    from searchr1_lite.retrieval import LocalRetriever

    corpus = load_corpus("wiki-vital")
    start = time.perf_counter()
    local = LocalRetriever.build(corpus, "bm25")
    out = {"build_s_bm25_wiki_vital": time.perf_counter() - start}
    questions = [e.question for e in fanoutqa_subquestions(corpus)]
    batch = (questions * 2)[:64]
    with tempfile.TemporaryDirectory() as folder:
        local.save(folder)
        t_local, t_http = _interleaved(local, folder, batch, repeats)
    out["bm25_b64_ms_inprocess"] = 1000 * statistics.median(t_local)
    out["bm25_b64_ms_http"] = 1000 * statistics.median(t_http)
    out["http_overhead_ms"] = out["bm25_b64_ms_http"] - out["bm25_b64_ms_inprocess"]
    canned = local.search(batch, 3)
    out["http_transport_only_ms"] = transport_ms(canned, batch, repeats, wait_ms=0)
    # the same, but the canned search first sleeps as long as the real one took: what the client pays for waking
    out["http_sleep_ms"] = round(out["bm25_b64_ms_inprocess"])
    out["http_transport_after_sleep_ms"] = transport_ms(canned, batch, repeats, wait_ms=out["http_sleep_ms"])
    return out


def _interleaved(local, folder: str, batch: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """Seconds of each search in this process and over HTTP from `searchr1-lite serve --index folder`."""
    with _service(["-m", "searchr1_lite.cli", "serve", "--index", folder]) as remote:
        assert remote.search(batch, 3)[0][0].id == local.search(batch, 3)[0][0].id
        t_local, t_http = [], []
        for _ in range(repeats * 20):  # interleaved pairs, so both see the same machine state
            t0 = time.perf_counter()
            local.search(batch, 3)
            t1 = time.perf_counter()
            remote.search(batch, 3)
            t_local.append(t1 - t0)
            t_http.append(time.perf_counter() - t1)
    return t_local, t_http


@contextlib.contextmanager
def _service(argv: list[str]):
    """A service (`python argv...`) in a process of its own, and a client for it."""
    from searchr1_lite.server import RemoteRetriever

    port = free_port()
    proc = start_service(argv, port, timeout=30)
    remote = RemoteRetriever(f"http://127.0.0.1:{port}", retries=0)
    try:
        yield remote
    finally:
        remote.close()
        stop_service(proc)


def transport_ms(canned: list, batch: list[str], repeats: int, wait_ms: int) -> float:
    """The service's own cost: a server in its own process whose search returns canned results (the same 64 x 3
    passages) after sleeping `wait_ms`, so the request, validation, the worker thread, JSON both ways, the socket and
    waking up after the wait are all that is timed (the sleep is taken off)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = os.path.join(tmp, "canned.json")
        with open(rows, "w") as f:
            json.dump([[vars(p) for p in row] for row in canned], f)
        with _service([__file__, "--serve-canned", rows, "--wait-ms", str(wait_ms)]) as remote:
            ms = 1000 * median_time(lambda: remote.search(batch, 3), repeats * 20)
    return ms - wait_ms


def serve_canned(path: str, port: int, wait_ms: int) -> None:
    """The child of `transport_ms`: `searchr1-lite serve`'s app over a retriever that only sleeps and answers."""
    import json

    from searchr1_lite.corpus import Passage
    from searchr1_lite.server import serve

    rows = [[Passage(**p) for p in row] for row in json.loads(open(path).read())]

    class Canned:
        def search(self, queries, k):
            time.sleep(wait_ms / 1000)
            return rows

    serve(Canned(), port=port, log_level="warning")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="vectors for the large setting")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--encode", type=int, default=256, help="passages to encode for the throughput figure")
    ap.add_argument("--quick", action="store_true", help="10k vectors only, fewer repeats")
    ap.add_argument("--json", default=None, help="also write the result here")
    ap.add_argument("--serve-canned", help=argparse.SUPPRESS)  # the child of transport_ms
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--wait-ms", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_canned:
        return serve_canned(args.serve_canned, args.port, args.wait_ms)
    n_big = 10_000 if args.quick else args.n
    repeats = 2 if args.quick else args.repeats

    import torch

    from searchr1_lite.corpus import load_corpus
    from searchr1_lite.data import fanoutqa_subquestions
    from searchr1_lite.retrieval import DenseEncoder, encode_corpus

    result = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}}
    result["encode"] = bench_encode(args.encode)
    corpus = load_corpus("wiki-vital")
    encoder = DenseEncoder("minilm")
    real = np.asarray(encode_corpus(corpus, encoder), dtype=np.float32)  # cached after the first run (3-4 min)
    questions = [e.question for e in fanoutqa_subquestions(corpus)][:64]
    real_queries = encoder.encode_queries(questions)
    result["search"] = [
        bench_search("real wiki-vital (MiniLM)", real, real_queries, repeats),
        bench_search(
            "real + Gaussian of real covariance", real_spectrum_vectors(real, n_big, 0), real_queries, repeats
        ),
        bench_search("clustered synthetic", clustered_vectors(n_big, 1), clustered_vectors(64, 2), repeats),
    ]
    result["http"] = bench_bm25_and_http(repeats)

    def hnsw_line(r: dict) -> str:
        best = r["hnsw_best_at_recall_0.95"]
        if best is None:
            top = max(r["hnsw"], key=lambda h: h["recall@10"])
            return f"{r['data']} n={r['n']}: HNSW never reaches recall 0.95 (best {top['recall@10']:.3f})"
        return (f"{r['data']} n={r['n']}: HNSW {best['speedup_vs_flat']:.1f}x exact at recall@10 "
                f"{best['recall@10']:.3f} (efSearch {best['ef_search']})")

    big = result["search"][1]
    goals = {
        "exact_qps_b64>=800": big["qps_flat_b64"] >= 800,
        "hnsw_0.95_at_5x(real-covariance)": (big["hnsw_best_at_recall_0.95"] or {}).get("speedup_vs_flat", 0) >= 5,
        "hnsw_0.95_at_5x(clustered)": (
            (result["search"][2]["hnsw_best_at_recall_0.95"] or {}).get("speedup_vs_flat", 0) >= 5
        ),
        "http_overhead<=2ms": result["http"]["http_overhead_ms"] <= 2,
    }
    report(
        result, args.json,
        f"exact search {big['qps_flat_b64']:.0f} q/s at batch 64 on {big['n']} vectors "
        f"({big['flat_vs_faiss_b64']:.1f}x faiss IndexFlatIP); "
        + "; ".join(hnsw_line(r) for r in result["search"])
        + f"; encode {result['encode']['encode_passages_per_s']:.0f} passages/s; "
        f"HTTP adds {result['http']['http_overhead_ms']:.2f} ms per 64-query request "
        f"({result['http']['http_transport_only_ms']:.2f} ms with the search itself excluded, "
        f"{result['http']['http_transport_after_sleep_ms']:.2f} ms when it is a {result['http']['http_sleep_ms']} ms "
        "sleep); "
        f"goals met {sum(goals.values())}/{len(goals)}, missed: {[k for k, v in goals.items() if not v]}",
    )


if __name__ == "__main__":
    main()
