"""The retrieval service under load and abuse, on loopback: the figures for docs/reliability.md.

Starts `searchr1-lite serve` (BM25 over the 10,033 wiki-vital passages) in its own process, then:
  1. load: `--clients` concurrent clients (asyncio + httpx, one connection each) send `--requests` requests in all,
     each one real question (FanOutQA), top 3; counts errors, reports latency p50 / p99 and requests per second;
  2. abuse: malformed JSON, wrong types, negative or huge topk, a null or very long query, an oversized body; each
     must get a 4xx with a message. The shapes the authors' trainer sends and their server answers (no queries,
     blank queries, topk 0, 600 queries in one POST) must get a 200 with one well-formed row per query. A good
     request right after each must still get its passages;
  3. restarts: the service is killed (SIGKILL) and started again `--restarts` times while a `RemoteRetriever` is
     asking; each call must come back with the right passages (retry with back-off), none with an empty result.
Prints one JSON object, then a one-line summary.

    python benchmarks/bench_server_load.py [--clients 50] [--requests 5000] [--restarts 3]
                                          [--json benchmarks/results/server_load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _child import free_port, report, start_service, stop_service

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ABUSE = [  # (what, body, expected status, rows a 200's "result" must have: one per query, 3 hits each (default topk))
    ("malformed JSON", b"{bad json", 422, None),
    ("queries not a list", b'{"queries": "one string"}', 422, None),
    ("queries of numbers", b'{"queries": [1, 2]}', 422, None),
    ("a null query", b'{"queries": ["x", null]}', 422, None),
    ("negative topk", b'{"queries": ["x"], "topk": -1}', 422, None),
    ("huge topk", b'{"queries": ["x"], "topk": 1000000000}', 422, None),
    ("topk a string", b'{"queries": ["x"], "topk": "ten"}', 422, None),
    ("query of 5,000 characters", json.dumps({"queries": ["x" * 5000]}).encode(), 422, None),
    ("body of 2 MiB", b'{"queries": ["' + b"x" * (2 << 20) + b'"]}', 413, None),
    ("not JSON at all", b"\x00\xff\xfe binary", 422, None),
    # accepted, as the authors' server accepts them (their trainer sends each): searched, or the default topk
    ("no queries", b'{"queries": []}', 200, 0),
    ("blank queries", b'{"queries": ["", "  "]}', 200, 2),
    ("topk 0 (the default)", b'{"queries": ["x"], "topk": 0}', 200, 1),
    ("600 queries (2 chunks, streamed)", json.dumps({"queries": ["q"] * 600}).encode(), 200, 600),
]


def serve_index(index: Path, port: int) -> subprocess.Popen:
    return start_service(["-m", "searchr1_lite.cli", "serve", "--index", str(index)], port)


async def load(url: str, questions: list[str], clients: int, total: int) -> dict:
    import httpx

    latencies, errors, sent = [], [], [0]

    async def client(i: int):
        async with httpx.AsyncClient(timeout=30) as http:
            while sent[0] < total:
                n = sent[0]
                sent[0] += 1
                start = time.perf_counter()
                try:
                    r = await http.post(url + "/retrieve", json={"queries": [questions[n % len(questions)]], "topk": 3})
                    ok = r.status_code == 200 and len(r.json()["result"][0]) == 3
                    if not ok:
                        errors.append(f"HTTP {r.status_code}: {r.text[:100]}")
                except httpx.HTTPError as e:
                    errors.append(f"{type(e).__name__}: {e}")
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "error_examples": errors[:3],
            "p50_ms": round(q[49] * 1e3, 1), "p99_ms": round(q[98] * 1e3, 1), "max_ms": round(max(latencies) * 1e3, 1),
            "requests_per_s": round(len(latencies) / wall, 1), "seconds": round(wall, 1)}


def well_formed(r, rows: int | None) -> bool:
    """A refusal: JSON with a "detail". An answer: {"result": [...]} with `rows` rows of 3 documents each."""
    try:
        body = r.json()
    except ValueError:
        return False
    if rows is None:
        return isinstance(body, dict) and bool(body.get("detail"))
    result = body.get("result") if isinstance(body, dict) else None
    return (isinstance(result, list) and len(result) == rows
            and all(len(row) == 3 and all(isinstance(hit.get("contents"), str) for hit in row) for row in result))


def abuse(url: str) -> list[dict]:
    import httpx

    out = []
    for what, body, expected, rows in ABUSE:
        r = httpx.post(url + "/retrieve", content=body, headers={"content-type": "application/json"}, timeout=30)
        after = httpx.post(url + "/retrieve", json={"queries": ["Mona Lisa"], "topk": 1}, timeout=30)
        served = after.status_code == 200 and after.json()["result"][0][0]["contents"].startswith("\"Mona Lisa\"")
        out.append({"input": what, "status": r.status_code, "expected": expected, "message": r.text[:120],
                    "well_formed": well_formed(r, rows), "served_after": served})
    return out


def restarts(index: Path, port: int, proc: subprocess.Popen, times: int) -> tuple[list[dict], subprocess.Popen]:
    from searchr1_lite.server import RemoteRetriever

    client = RemoteRetriever(f"http://127.0.0.1:{port}", retries=8, backoff=0.25, timeout=10)
    out = []
    for _ in range(times):
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        box = {}
        asker = threading.Thread(target=lambda: box.update(result=client.search(["Mona Lisa"], 3),
                                                           at=time.perf_counter()))
        start = time.perf_counter()
        asker.start()  # asks while nothing listens
        time.sleep(1.0)
        proc = serve_index(index, port)
        asker.join()
        result = box.get("result")
        out.append({"answered": bool(result) and result[0][0].title == "Mona Lisa" and len(result[0]) == 3,
                    "seconds_to_answer": round(box.get("at", start) - start, 2)})
    return out, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()

    from searchr1_lite.corpus import load_corpus
    from searchr1_lite.data import load_questions
    from searchr1_lite.retrieval import LocalRetriever

    corpus = load_corpus("wiki-vital")
    questions = [e.question for e in load_questions("fanoutqa")]
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "bm25"
        LocalRetriever.build(corpus, "bm25").save(index)
        port = free_port()
        proc = serve_index(index, port)
        url = f"http://127.0.0.1:{port}"
        try:
            result = {"service": "searchr1-lite serve, BM25 over wiki-vital (10,033 passages), loopback",
                      "load": asyncio.run(load(url, questions, args.clients, args.requests)),
                      "abuse": abuse(url)}
            result["restarts"], proc = restarts(index, port, proc, args.restarts)
        finally:
            stop_service(proc)
    bad = [a for a in result["abuse"] if a["status"] != a["expected"] or not a["well_formed"] or not a["served_after"]]
    result["ok"] = (result["load"]["errors"] == 0 and not bad and all(r["answered"] for r in result["restarts"]))
    ld = result["load"]
    refused = sum(expected >= 400 for _, _, expected, _ in ABUSE)
    report(result, args.json,
           f"load: {ld['requests']} requests from {ld['clients']} clients, {ld['errors']} errors, "
           f"p50 {ld['p50_ms']} ms, p99 {ld['p99_ms']} ms, {ld['requests_per_s']} req/s; abuse: "
           f"{len(ABUSE) - len(bad)}/{len(ABUSE)} as expected ({refused} refused with a 4xx, "
           f"{len(ABUSE) - refused} answered 200 with well-formed rows) and served after; restarts: "
           f"{sum(r['answered'] for r in result['restarts'])}/{args.restarts} answered -> "
           f"{'OK' if result['ok'] else 'FAILED'}")
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
