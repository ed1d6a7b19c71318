import json

import httpx
import pytest

from searchr1_lite.server import BackgroundServer, RemoteRetriever, RetrieverUnavailable, check_host


@pytest.fixture(scope="module")
def server(bm25_retriever):
    with BackgroundServer(bm25_retriever, info={"passages": len(bm25_retriever.corpus)}) as s:
        yield s


def test_client_matches_in_process(server, bm25_retriever):
    client = RemoteRetriever(server.url)
    queries = ["Who painted the Mona Lisa?", "What is the capital of Japan?"]
    remote, local = client.search(queries, 3), bm25_retriever.search(queries, 3)
    assert [[p.id for p in row] for row in remote] == [[p.id for p in row] for row in local]
    assert [[round(p.score, 4) for p in row] for row in remote] == [[round(p.score, 4) for p in row] for row in local]
    assert client.health() == {"status": "ok", "passages": 10033}


def test_wire_format_is_the_papers(server):
    body = {"queries": ["Mona Lisa"], "topk": 2, "return_scores": True}
    result = httpx.post(server.url + "/retrieve", json=body).json()["result"]
    assert len(result) == 1 and len(result[0]) == 2
    assert set(result[0][0]) == {"document", "score"} and set(result[0][0]["document"]) == {"id", "contents"}
    bare = httpx.post(server.url + "/retrieve", json={"queries": ["Mona Lisa"], "topk": 2}).json()["result"]
    assert bare[0][0] == result[0][0]["document"]


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"{bad json", 422, "JSON decode error"),
        (b'{"queries": "one string"}', 422, "valid list"),
        (b'{"queries": [1, 2]}', 422, "valid string"),
        (b'{"queries": []}', 422, "at least 1"),
        (b'{"queries": ["  "]}', 422, "queries[0] is empty"),
        (b'{"queries": ["x"], "topk": 0}', 422, "greater than or equal to 1"),
        (b'{"queries": ["x"], "topk": 1000000}', 422, "less than or equal to 100"),
        (json.dumps({"queries": ["x" * 5000]}).encode(), 422, "limit is 4096"),
        (json.dumps({"queries": ["q"] * 513}).encode(), 422, "at most 512"),
        (b'{"queries": ["' + b"x" * (2 << 20) + b'"]}', 413, "request body over"),
    ],
)
def test_bad_requests_get_4xx_and_the_service_keeps_serving(server, body, status, fragment):
    r = httpx.post(server.url + "/retrieve", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and fragment in r.text
    assert RemoteRetriever(server.url).search(["Mona Lisa"], 1)[0][0].title == "Mona Lisa"


def test_a_streamed_body_over_the_limit_is_refused_too(server):
    def chunks():  # no content-length: sent chunked, so only counting the bytes catches it
        for _ in range(40):
            yield b"x" * 65536

    r = httpx.post(server.url + "/retrieve", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "request body over" in r.text
    assert RemoteRetriever(server.url).search(["Mona Lisa"], 1)[0][0].title == "Mona Lisa"


def test_client_fails_loudly_when_no_service(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    client = RemoteRetriever(f"http://127.0.0.1:{port}", retries=2, backoff=0.01, timeout=2)
    with pytest.raises(RetrieverUnavailable, match=f"127.0.0.1:{port}/retrieve failed 3 times"):
        client.search(["anything"], 3)


def test_client_does_not_retry_a_bad_request(server):
    with pytest.raises(RetrieverUnavailable, match="HTTP 422"):
        RemoteRetriever(server.url, retries=5, backoff=10).search(["x"], 10_000)


def test_binding_beyond_loopback_needs_a_flag():
    check_host("127.0.0.1", False)
    check_host("localhost", False)
    check_host("::1", False)
    with pytest.raises(ValueError, match="--allow-remote"):
        check_host("0.0.0.0", False)
    check_host("0.0.0.0", True)


def test_a_failing_retriever_is_a_503_with_its_reason_not_a_crash():
    class Broken:
        def search(self, queries, k=3):
            raise RuntimeError("index file went away")

    with BackgroundServer(Broken()) as s:
        r = httpx.post(s.url + "/retrieve", json={"queries": ["x"]})
        assert r.status_code == 503 and "index file went away" in r.json()["detail"]
        with pytest.raises(RetrieverUnavailable, match="failed 2 times.*index file went away"):
            RemoteRetriever(s.url, retries=1, backoff=0.01).search(["x"], 3)
        assert httpx.get(s.url + "/health").status_code == 200


def test_client_survives_a_service_restart(bm25_retriever):
    """The service goes down mid-training and comes back on the same port: the client's retries carry it over."""
    import threading

    first = BackgroundServer(bm25_retriever).start()
    client = RemoteRetriever(first.url, retries=6, backoff=0.1, timeout=5)
    assert client.search(["Mona Lisa"], 1)[0][0].title == "Mona Lisa"
    first.stop()
    second = BackgroundServer(bm25_retriever, port=first.port)
    restarter = threading.Timer(0.5, second.start)  # back after ~0.5 s; the client's back-off spans 6.3 s
    restarter.start()
    try:
        result = client.search(["Mona Lisa"], 1)  # sent while the service is down
        assert result[0][0].title == "Mona Lisa"
    finally:
        restarter.join()
        second.stop()
    with pytest.raises(RetrieverUnavailable, match=f"{first.url}/retrieve failed 2 times"):  # and once it is gone
        RemoteRetriever(first.url, retries=1, backoff=0.01, timeout=2).search(["Mona Lisa"], 1)
