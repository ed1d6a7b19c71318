import json
import socket

import httpx
import pytest

from searchr1_lite.server import (
    CHUNK_QUERIES,
    MAX_BODY_BYTES,
    MAX_QUERY_CHARS,
    BackgroundServer,
    RemoteRetriever,
    RetrieverUnavailable,
    _hit_to_passage,
    check_host,
)


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
        (b'{"queries": ["x"], "topk": -1}', 422, "greater than or equal to 0"),
        (b'{"queries": ["x", null]}', 422, "valid string"),
        (b'{"queries": ["x"], "topk": 1000000}', 422, "less than or equal to 100"),
        (json.dumps({"queries": ["x" * 5000]}).encode(), 422, "limit is 4096"),
        (json.dumps({"queries": [""] * 65_537}).encode(), 422, "at most 65536 items"),
        (b'{"queries": ["' + b"x" * (2 << 20) + b'"]}', 413, "request body over"),
    ],
)
def test_bad_requests_get_4xx_and_the_service_keeps_serving(server, body, status, fragment):
    r = httpx.post(server.url + "/retrieve", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and fragment in r.text
    assert RemoteRetriever(server.url).search(["Mona Lisa"], 1)[0][0].title == "Mona Lisa"


# The authors' trainer (PeterGriffinJin/Search-R1, search_r1/llm_agent/generation.py) posts one request a turn
# and reads it as below: no status check, so anything but a 200 with "result" is a KeyError in their training loop.
def their_client(url, queries, topk=3):
    payload = {"queries": queries, "topk": topk, "return_scores": True}
    result = httpx.post(url + "/retrieve", json=payload, timeout=60).json()["result"]
    return [[hit["document"]["contents"] for hit in row] for row in result]


def contents(retriever, queries, k=3):
    return [[p.contents for p in row] for row in retriever.search(queries, k)]


def test_their_trainer_turn_without_searches_gets_an_empty_result(server):
    assert their_client(server.url, []) == []


def test_their_blank_queries_go_to_the_engine_as_in_their_server(server, bm25_retriever):
    queries = ["", "   ", "Who painted the Mona Lisa?"]
    got = their_client(server.url, queries)
    assert [len(row) for row in got] == [3, 3, 3]
    assert got == contents(bm25_retriever, queries)  # bm25s: blanks get score-0 passages (pyserini: none)
    assert got[2][0].startswith('"Mona Lisa"')


def test_what_a_policy_writes_is_searched_however_long(server, bm25_retriever):
    """A model may write a query longer than the service takes, and a turn's queries may outgrow one request: the
    client clips each query to the service's limit and splits the turn, rather than failing the run."""
    client = RemoteRetriever(server.url, retries=0)
    long = "Mona Lisa " + "#" * (MAX_QUERY_CHARS + 800)
    many = [f"Mona Lisa {i} " + "x" * 3000 for i in range(MAX_BODY_BYTES // 3000 + 20)]  # > 1 MiB together
    for queries in ([long, "Mount Everest"], many):
        remote = client.search(queries, 3)
        local = bm25_retriever.search([q[:MAX_QUERY_CHARS] for q in queries], 3)
        assert [[p.id for p in row] for row in remote] == [[p.id for p in row] for row in local]


def test_their_whole_turn_in_one_post_equals_small_posts(server, wiki_vital):
    """512 rows x 5 samples = 2,560 queries in one POST: five chunks, streamed; each row is the query's own."""
    queries = [f"What is {t}?" for t in wiki_vital.titles()[:2558]] + ["", "Mona Lisa"]
    assert len(queries) == 5 * CHUNK_QUERIES
    big = their_client(server.url, queries)
    small = [row for i in range(0, len(queries), 64) for row in their_client(server.url, queries[i:i + 64])]
    assert len(big) == len(queries) and big == small
    assert all(len(row) == 3 for row in big)
    hits = sum(row[0].startswith(f'"{t}"') for row, t in zip(big, wiki_vital.titles()[:2558]))
    assert hits > 0.9 * 2558  # rows line up with their queries across the chunk joins
    assert big[-1][0].startswith('"Mona Lisa"')


def test_their_topk_0_means_the_default_as_in_their_server(server, bm25_retriever):
    queries = ["Mona Lisa", "Mount Everest"]
    assert their_client(server.url, queries, topk=0) == their_client(server.url, queries, topk=None)
    assert their_client(server.url, queries, topk=0) == contents(bm25_retriever, queries, 3)
    assert [len(row) for row in their_client(server.url, queries, topk=1)] == [1, 1]


def test_an_engine_failing_mid_stream_never_yields_a_well_formed_answer():
    class FailsAfterTheFirstChunk:
        calls = 0

        def search(self, queries, k=3):
            self.calls += 1
            if self.calls % 2 == 0:  # every second chunk: the status line has gone out by then
                raise RuntimeError("index file went away")
            return [[] for _ in queries]

    with BackgroundServer(FailsAfterTheFirstChunk()) as s:
        with pytest.raises((httpx.HTTPError, json.JSONDecodeError)):  # a cut body, not rows silently missing
            httpx.post(s.url + "/retrieve", json={"queries": ["x"] * (CHUNK_QUERIES + 1)}).json()
        with pytest.raises(RetrieverUnavailable, match="failed 2 times"):  # our client retries, then says so
            RemoteRetriever(s.url, retries=1, backoff=0.01).search(["x"] * (CHUNK_QUERIES + 1), 3)
        assert httpx.get(s.url + "/health").status_code == 200


@pytest.mark.parametrize("result", [[["a bare string"]], [[42]], [None], {"not": "rows"}])
def test_a_foreign_service_replying_another_shape_is_named_not_a_crash(result):
    """Another team's retriever (outside this machine: a mocked transport) answering hits that are not objects."""
    client = RemoteRetriever("http://elsewhere:8000", retries=0)
    client.client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={
        "result": result})))
    with pytest.raises(RetrieverUnavailable, match="http://elsewhere:8000/retrieve: unexpected response shape"):
        client.search(["x"], 3)


def test_client_reads_their_bm25_servers_documents_without_an_id():
    doc = {"title": "Mona Lisa", "text": "A portrait.", "contents": '"Mona Lisa"\nA portrait.'}  # their lines 179-186
    hit = {"document": doc, "score": 7.5}
    passage = _hit_to_passage(hit)
    assert (passage.title, passage.text, passage.score) == ("Mona Lisa", "A portrait.", 7.5)


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


def test_a_run_pointed_at_no_service_fails_before_its_model_loads(server, tmp_path):
    """train's make_retriever asks the service at once (an empty search, which the authors' server answers too):
    with nothing there a run loaded its model and sampled a step before its first search found out."""
    from searchr1_lite.config import DataConfig
    from searchr1_lite.train import make_retriever

    assert make_retriever(DataConfig(retriever_url=server.url))[0].search(["Mona Lisa"], 1)[0][0].title == "Mona Lisa"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    with pytest.raises(RetrieverUnavailable, match=f"127.0.0.1:{port}/retrieve failed 5 times .*Is it running"):
        make_retriever(DataConfig(retriever_url=f"http://127.0.0.1:{port}"))


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


def test_a_port_in_use_is_one_line_naming_it(tmp_path, capsys):
    """uvicorn logged it among its startup lines and exited with 3."""
    import socket

    from searchr1_lite.cli import main

    assert main(["index", "--corpus", "world:seed=1,people=30", "--out", str(tmp_path / "idx")]) == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--index", str(tmp_path / "idx"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1: address already in use (another server?); pass --port" in err, err
