"""The retrieval service and its client, speaking the paper's wire format.

    POST /retrieve  {"queries": ["..."], "topk": 3, "return_scores": true}
      -> {"result": [[{"document": {"id": ..., "contents": ...}, "score": 0.83}, ...], ...]}
      (without return_scores each hit is the bare document: the shape the authors' retrieval_server.py builds)
    GET  /health    -> {"status": "ok", "passages": N, "index": "...", "corpus": "..."}

Their trainer against this service (search_r1/llm_agent/generation.py, `batch_search`): every request it sends is
answered as their server (search_r1/search/retrieval_server.py) answers it.
  - `"queries": []` (no row searched this turn) -> `{"result": []}`.
  - a blank query (their parser accepts `<search></search>`) goes to the engine like any other: their server has
    no special case either. A dense engine returns the k passages nearest the blank query, as theirs does with e5;
    our BM25 (bm25s) returns k passages of score 0, where their pyserini BM25 returns none.
  - up to MAX_QUERIES (65,536) queries in one POST (one per turn: batch x n, e.g. 2,560), CHUNK_QUERIES at a time and
    streamed out chunk by chunk, so the engine's work and the rows held at once stay bounded.
  - `"topk": 0` or null means the service's default topk, as in theirs (`if not request.topk`).
Our client against their server: `RemoteRetriever` sends what their trainer sends (topk, return_scores true) and
reads documents with or without an "id" (their BM25 server returns title/text/contents). Only return_scores false
differs: their server fails on it (it unpacks scores that its batch_search does not return); ours answers it.
So training code can swap ours for theirs, or for a big machine serving the full wiki-18 index, without a change:
`RemoteRetriever` implements the same `Retriever.search` as the in-process `LocalRetriever`.

Safety by default: binds 127.0.0.1 (another address needs `allow_remote=True` / `--allow-remote`), caps the request
body (1 MiB), query length and topk; every bad request gets a 4xx with a message, never a 500.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, Field, field_validator

from .corpus import Passage
from .retrieval import TOPK, Retriever

HOST, PORT = "127.0.0.1", 8000  # where `serve` listens and a client looks, unless told otherwise
URL = f"http://{HOST}:{PORT}"
MAX_BODY_BYTES = 1 << 20  # 1 MiB: this, not a query count, bounds a request (2,560 short queries are ~0.1 MiB)
CHUNK_QUERIES = 512  # queries per engine call (the authors' dense server also encodes 512 at a time)
MAX_QUERIES = 65_536  # a turn of their trainer is batch x n (512 x 5 = 2,560); this bounds the work one request
# can ask for (the body limit alone lets ~350k blank queries through)
MAX_QUERY_CHARS = 4096
MAX_TOPK = 100


class QueryRequest(BaseModel):
    # Blanks and [] allowed (the authors' trainer sends them: see the module docstring); up to MAX_QUERIES at once.
    queries: list[str] = Field(max_length=MAX_QUERIES)
    topk: int | None = Field(default=None, ge=0, le=MAX_TOPK)  # 0, like null, means the default (theirs too)
    return_scores: bool = False

    @field_validator("queries")
    @classmethod
    def _check_queries(cls, queries: list[str]) -> list[str]:
        for i, q in enumerate(queries):
            if len(q) > MAX_QUERY_CHARS:
                raise ValueError(f"queries[{i}] has {len(q)} characters; the limit is {MAX_QUERY_CHARS}")
        return queries


def create_app(retriever: Retriever, default_topk: int = TOPK, info: dict[str, Any] | None = None):
    """A FastAPI app serving `retriever`."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    app = FastAPI(title="searchr1_lite retrieval", version="1")
    app.state.retriever = retriever

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", **(info or {})}

    async def search_chunk(queries: list[str], k: int, scores: bool) -> bytes:
        """One chunk's rows as JSON without the outer brackets, so chunks join with a comma."""
        hits = await run_in_threadpool(app.state.retriever.search, queries, k)
        # serialised directly with orjson: FastAPI's generic encoder costs milliseconds on 64 x 3 passages
        return orjson.dumps(_rows(hits, scores))[1:-1]

    async def stream(first: bytes, rest: list[list[str]], k: int, scores: bool):
        # An engine failure here raises, and the server cuts the body short: the client gets invalid JSON or a
        # broken connection, never a well-formed answer with rows missing.
        yield b'{"result":[' + first
        for chunk in rest:
            yield b"," + await search_chunk(chunk, k, scores)
        yield b"]}"

    @app.post("/retrieve")
    async def retrieve(req: QueryRequest) -> Response:
        k, chunks = req.topk or default_topk, _chunks(req.queries)
        try:  # the first chunk before any byte goes out, so a failing engine still gets a clean 503
            first = await search_chunk(chunks[0], k, req.return_scores) if chunks else b""
        except Exception as e:  # the request was fine; the engine failed: say so (503: a client may retry)
            return JSONResponse({"detail": f"retrieval failed: {type(e).__name__}: {e}"}, status_code=503)
        if len(chunks) <= 1:
            return Response(b'{"result":[' + first + b"]}", media_type="application/json")
        return StreamingResponse(stream(first, chunks[1:], k, req.return_scores), media_type="application/json")

    return BodyLimit(app, MAX_BODY_BYTES)


def _chunks(queries: list[str], size: int = CHUNK_QUERIES) -> list[list[str]]:
    return [queries[i:i + size] for i in range(0, len(queries), size)]


def _rows(hits: list[list[Passage]], return_scores: bool) -> list[list[dict[str, Any]]]:
    if return_scores:
        return [[{"document": p.to_row(), "score": p.score} for p in row] for row in hits]
    return [[p.to_row() for p in row] for row in hits]


class BodyLimit:
    """Plain ASGI wrapper: 413 for a body over `limit` bytes (declared or streamed), before anything parses it.
    (A plain wrapper, not Starlette's BaseHTTPMiddleware, which costs ~0.5 ms a request.)"""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def __getattr__(self, name: str):  # app.state, app.routes, ... reach the FastAPI app
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._too_large(send)
        seen, refused = 0, False

        async def limited_receive():
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit and not refused:
                refused = True
                await self._too_large(send)
                return {"type": "http.disconnect"}  # the app stops reading; its own reply is dropped below
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _too_large(self, send) -> None:
        body = json.dumps({"detail": f"request body over {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def check_host(host: str, allow_remote: bool) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise ValueError(
            f"refusing to bind {host!r}: the service has no authentication. Bind 127.0.0.1, or pass "
            "--allow-remote (allow_remote=True) if you really mean to expose it on a network"
        )


def serve(retriever: Retriever, host: str = HOST, port: int = PORT, allow_remote: bool = False,
          info: dict[str, Any] | None = None, log_level: str = "info") -> None:
    """Run the service in the foreground (Ctrl-C to stop)."""
    import uvicorn

    check_host(host, allow_remote)
    _check_port_free(host, port)
    uvicorn.run(create_app(retriever, info=info), host=host, port=port, log_level=log_level)


def _check_port_free(host: str, port: int) -> None:
    """A port in use, said in one line before the index is served (uvicorn logs it among its startup lines and exits
    with 3). The check and uvicorn's bind are not atomic: a port taken between them still fails, as uvicorn says."""
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a socket in TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as e:
            raise OSError(f"port {port} on {host}: {e.strerror.lower()} (another server?); pass --port with a free "
                          "one") from None


class BackgroundServer:
    """The service in a background thread of this process (notebooks, tests). Use as a context manager.

        with BackgroundServer(retriever) as server:
            RemoteRetriever(server.url).search(["..."], 3)
    """

    def __init__(self, retriever: Retriever, host: str = HOST, port: int = 0, allow_remote: bool = False,
                 info: dict[str, Any] | None = None):
        import socket

        check_host(host, allow_remote)
        if port == 0:  # pick a free port now, so the URL is known before the server starts
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.app = create_app(retriever, info=info)
        self._server = self._thread = None

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        import threading

        import uvicorn

        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"retrieval service did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RetrieverUnavailable(RuntimeError):
    """The retrieval service could not be reached or answered badly, after all retries."""


class RemoteRetriever:
    """Client for `/retrieve` (ours or the authors'): retries with exponential back-off, then a clear error.

    It never returns an empty result in place of a failure: the policy must not be trained on silence.
    """

    def __init__(self, url: str = URL, timeout: float = 30.0, retries: int = 4,
                 backoff: float = 0.5):
        import httpx

        if not url.startswith(("http://", "https://")):
            raise ValueError(f"retrieval service URL {url!r} has no scheme: write http://{url.split('://')[-1]}")
        try:  # a port out of range or not a number, said now, not as "connection refused" after every retry
            urlsplit(url).port
        except ValueError as e:
            raise ValueError(f"retrieval service URL {url!r}: {e} (the port `searchr1-lite serve` listens on, "
                             "8000 by default)") from None
        self.url = url.rstrip("/")
        if self.url.endswith("/retrieve"):
            self.url = self.url[: -len("/retrieve")]
        self.retries, self.backoff = retries, backoff
        self.client = httpx.Client(timeout=timeout)

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def ping(self) -> "RemoteRetriever":
        """Fail now, before a model loads, if no retrieval service answers: else the first search of a run found out.
        An empty search, which the authors' server (no /health) answers too, as ours does."""
        self._search([], 1)
        return self

    def search(self, queries: list[str], k: int = TOPK) -> list[list[Passage]]:
        # A query is what the policy wrote, and a policy can write one longer than the service takes (500 tokens of
        # up to 128 characters): clipped, not refused, so that model output stays data. BM25 and the encoders read
        # far less than 4,096 characters anyway (MiniLM and e5 stop at 512 tokens).
        queries = [q[:MAX_QUERY_CHARS] for q in queries]
        out = []
        for batch in _batches(queries):
            out += self._search(batch, k)
        return out

    def _search(self, queries: list[str], k: int) -> list[list[Passage]]:
        body = self._call("POST", "/retrieve", {"queries": queries, "topk": k, "return_scores": True})
        try:
            rows = body["result"]
            out = [[_hit_to_passage(hit) for hit in row] for row in rows]
        except (KeyError, TypeError, AttributeError) as e:  # AttributeError: a hit that is not an object
            raise RetrieverUnavailable(f"{self.url}/retrieve: unexpected response shape ({e!r})") from None
        if len(out) != len(queries):
            raise RetrieverUnavailable(f"{self.url}/retrieve: {len(out)} results for {len(queries)} queries")
        return out

    def _call(self, method: str, path: str, payload: dict | None = None) -> Any:
        import httpx

        url, last = self.url + path, ""
        for attempt in range(self.retries + 1):
            try:
                r = self.client.request(method, url, json=payload)
                if r.status_code < 500:
                    if r.status_code >= 400:  # our request is wrong: retrying will not help
                        raise RetrieverUnavailable(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
                    try:
                        return orjson.loads(r.content)
                    except orjson.JSONDecodeError:
                        raise RetrieverUnavailable(f"{url}: HTTP {r.status_code} but the body is not JSON: "
                                                   f"{r.text[:200]!r}") from None
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise RetrieverUnavailable(
            f"retrieval service at {url} failed {self.retries + 1} times (last: {last}). "
            f"Is it running? Start it with `searchr1-lite serve --index DIR --port PORT`."
        )

    def close(self) -> None:
        self.client.close()


def _batches(queries: list[str], limit: int = MAX_BODY_BYTES - 1024) -> Iterator[list[str]]:
    """The queries in requests the service accepts: each body under its limit (the queries as JSON, and 1 KiB for
    the rest), at most MAX_QUERIES queries. A turn's usual few KiB go in one request."""
    batch, size = [], 0
    for q in queries:
        n = len(orjson.dumps(q)) + 1
        if batch and (size + n > limit or len(batch) == MAX_QUERIES):
            yield batch
            batch, size = [], 0
        batch.append(q)
        size += n
    if batch:
        yield batch


def _hit_to_passage(hit: dict[str, Any]) -> Passage:
    doc = hit.get("document", hit)  # with or without return_scores
    # no "id" from the authors' BM25 server over an index that stores contents (title, text, contents only)
    return Passage(str(doc.get("id", "")), doc["contents"], hit.get("score"))
