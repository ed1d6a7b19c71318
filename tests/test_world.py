"""The synthetic world: deterministic, answers reachable in exactly the stated number of hops, splits by entity."""

import re

import pytest

from searchr1_lite.retrieval import LocalRetriever
from searchr1_lite.reward import contains_answer, normalize_answer
from searchr1_lite.world import contrast_pairs, load_world, make_world, parse_world_spec, world_spec


@pytest.fixture(scope="module")
def world():
    return make_world(seed=3, people=120)


def _mentions(text: str, titles: list[str]) -> list[str]:
    return [t for t in titles if re.search(rf"\b{re.escape(t)}\b", text)]


def hops_needed(world, question: str, answers: list[str]) -> int | None:
    """Follow titles from the question: 1 if a passage it names holds the answer, 2 if a passage named there does."""
    by_title = {p.title: p for p in world.corpus}
    titles = sorted(by_title, key=len, reverse=True)
    first = [by_title[t] for t in _mentions(question, titles)]
    if any(contains_answer(p.text, answers) for p in first):
        return 1
    for p in first:
        for t in _mentions(p.text, titles):
            if t != p.title and contains_answer(by_title[t].text, answers):
                return 2
    return None


def test_contrast_pairs_are_a_single_hop_question_and_its_next_hop(world):
    """Each pair: a two-hop question and the single-hop one about the same person whose answer is its bridge (the
    birthplace whose country it asks; the author whose birthplace it asks). Each question is in one pair at most."""
    questions = world.splits["train"]
    pairs = contrast_pairs(questions)
    next_hop = {"birth_country": world.facts["country"], "author_birthplace": world.facts["birthplace"]}
    for two, one in pairs:
        a, b = questions[two], questions[one]
        assert (a.meta["hops"], b.meta["hops"], a.meta["person"]) == (2, 1, b.meta["person"])
        assert next_hop[a.meta["kind"]][b.answers[0]] == a.answers[0], (a, b)
    assert len({t for t, _ in pairs}) == len({o for _, o in pairs}) == len(pairs)
    assert len(pairs) >= 0.9 * sum(q.meta["hops"] == 2 for q in questions)  # splits are by person: few lack theirs


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = make_world(seed=1, people=60), make_world(seed=1, people=60), make_world(seed=2, people=60)
    assert a.corpus.checksum == b.corpus.checksum
    assert [q.question for q in a.splits["test"]] == [q.question for q in b.splits["test"]]
    assert a.corpus.checksum != c.corpus.checksum


def test_every_answer_is_reachable_in_the_stated_hops(world):
    for split, questions in world.splits.items():
        for q in questions:
            assert hops_needed(world, q.question, q.answers) == q.meta["hops"], (split, q)


def test_no_answer_appears_in_its_question(world):
    for questions in world.splits.values():
        for q in questions:
            assert all(normalize_answer(a) not in normalize_answer(q.question) for a in q.answers), q


def test_splits_are_by_person(world):
    people = {s: {q.meta["person"] for q in qs} for s, qs in world.splits.items()}
    assert not people["train"] & people["test"] and not people["train"] & people["dev"]
    assert not people["dev"] & people["test"]
    # a test person is never named in a training question or answer
    train_text = " ".join(q.question + " " + " ".join(q.answers) for q in world.splits["train"])
    assert not any(p in train_text for p in people["test"])


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5, 1.0])
def test_two_hop_share(share):
    w = make_world(seed=0, people=100, two_hop_share=share)
    qs = [q for s in w.splits.values() for q in s]
    got = sum(q.meta["hops"] == 2 for q in qs) / len(qs)
    assert abs(got - share) < 0.03


def test_minimal_pairs_change_only_the_wording_of_the_birthplace_pair():
    """The same world, questions, answers and splits; a birthplace question and its country question about the same
    person differ in one word, city / country, and no other kind of question changes."""
    plain, minimal = make_world(seed=3, people=120), load_world("world:seed=3,people=120,minimal_pairs=1")
    assert plain.corpus.checksum == minimal.corpus.checksum
    for split, rows in plain.splits.items():
        other = minimal.splits[split]
        assert [(q.id, q.answers, q.meta) for q in rows] == [(q.id, q.answers, q.meta) for q in other]
        for a, b in zip(rows, other):
            reworded = {"birthplace": "In which city was", "birth_country": "In which country was"}.get(a.meta["kind"])
            assert b.question.startswith(reworded) if reworded else a.question == b.question, (a, b)
        assert sum(a.question != b.question for a, b in zip(rows, other)) >= len(rows) / 4  # most of a pair's wordings
        pairs = contrast_pairs(other)
        pairs = [(other[t].question.split(), other[o].question.split()) for t, o in pairs
                 if other[t].meta["kind"] == "birth_country"]
        assert pairs and all([x for x, y in zip(t, o) if x != y] == ["country"] and len(t) == len(o) for t, o in pairs)


def test_one_retrieval_finds_single_hop_answers_not_two_hop(world):
    """What the demo rests on: RAG's one retrieval with the question answers single-hop questions, rarely two-hop."""
    retriever = LocalRetriever.build(world.corpus, "bm25")
    recall = {}
    for hops in (1, 2):
        qs = world.questions("train", hops)
        hits = retriever.search([q.question for q in qs], 3)
        recall[hops] = sum(any(contains_answer(p.contents, q.answers) for p in h) for q, h in zip(qs, hits)) / len(qs)
    assert recall[1] >= 0.9 and recall[2] <= 0.3, recall


def test_world_spec():
    assert parse_world_spec("world") == {}
    assert (parse_world_spec("world:seed=2, people=50,two_hop_share=0.7")
            == {"seed": 2, "people": 50, "two_hop_share": 0.7})
    assert world_spec() == "world" and world_spec(seed=2, two_hop_share=0.7) == "world:seed=2,two_hop_share=0.7"
    for spec in ("world", "world:seed=2,people=50,two_hop_share=0.7", "world:minimal_pairs=1"):
        assert world_spec(**parse_world_spec(spec)) == spec  # the inverse
    assert len(load_world("world:people=30").corpus) > 30
    for bad, says in [("wrld", "not a world spec"), ("world:size=3", "unknown key 'size'; the keys: seed, people"),
                      ("world:seeed=1", r"unknown key 'seeed' \(did you mean 'seed'\?\)"),
                      ("world:seed", "'seed' must be key=value with key one of seed"),
                      ("world:people=many", "must be int")]:
        with pytest.raises(ValueError, match=says):
            parse_world_spec(bad)
    with pytest.raises(ValueError, match="between 0 and 1"):
        make_world(two_hop_share=1.5)
    with pytest.raises(ValueError, match="minimal_pairs must be 0 or 1"):
        load_world("world:minimal_pairs=2")
    with pytest.raises(ValueError, match="kinds: country unknown; join some of birthplace, author, "):
        load_world("world:kinds=birthplace+country")


def test_a_file_named_like_a_world_is_a_file(tmp_path, monkeypatch):
    """Only `world` and `world:...` are worlds: a question file called world_trivia.jsonl is read as a file by
    load_questions and by the trainer's split (which once took any name starting with "world" for a world)."""
    from searchr1_lite.config import DataConfig
    from searchr1_lite.data import load_questions
    from searchr1_lite.train import split_questions

    monkeypatch.chdir(tmp_path)
    rows = [f'{{"question": "Who wrote book {i}?", "golden_answers": ["Ann {i}"]}}' for i in range(10)]
    (tmp_path / "world_trivia.jsonl").write_text("\n".join(rows) + "\n")
    assert [q.answers for q in load_questions("world_trivia.jsonl")][:2] == [["Ann 0"], ["Ann 1"]]
    train, held_out = split_questions(DataConfig(questions="world_trivia.jsonl", eval_fraction=0.2), None)
    assert (len(train), len(held_out)) == (8, 2)
    assert sorted(q.answers[0] for q in train + held_out) == sorted(f"Ann {i}" for i in range(10))


def test_kinds_keep_only_those_questions_in_the_same_world():
    """`kinds` drops the other kinds of question; the corpus, the people in each split, and every kept question are
    the full world's (the wording drawn for a dropped question does not shift the others)."""
    full, two = make_world(seed=3, people=120), load_world("world:seed=3,people=120,kinds=birthplace+author_birthplace")
    assert full.corpus.checksum == two.corpus.checksum
    for split, rows in full.splits.items():
        kept = {(q.question, q.answers[0]) for q in rows if q.meta["kind"] in ("birthplace", "author_birthplace")}
        got = two.splits[split]
        assert {q.meta["kind"] for q in got} == {"birthplace", "author_birthplace"}
        assert {(q.question, q.answers[0]) for q in got} <= kept
        assert {q.meta["person"] for q in got} <= {q.meta["person"] for q in rows}
    assert abs(two.describe()["two_hop_share"] - 0.5) < 0.03  # balanced as any world


def test_kinds_of_one_hop_count_keep_all_their_questions():
    """A world of single-hop (or two-hop) kinds only has nothing to balance: every split keeps all its questions
    (balancing against an empty side used to drop them all, and training then found no questions)."""
    full = make_world(seed=3, people=120)
    for kinds, hops in [("birthplace", 1), ("birthplace+author", 1), ("birth_country", 2)]:
        world = load_world(f"world:seed=3,people=120,kinds={kinds}")
        for split, rows in world.splits.items():
            assert rows and {q.meta["hops"] for q in rows} == {hops}
            people = {q.meta["person"] for q in full.splits[split]}
            assert len({q.id for q in rows}) == len(rows) and {q.meta["person"] for q in rows} <= people
        assert len(world.splits["train"]) > 40


def test_a_world_corpus_reloads_from_its_source_and_its_index_without_the_corpus(tmp_path):
    """The corpus names every argument its passages depend on, so `load_corpus(source)` (what `index --corpus` and a
    saved index's manifest use) gives the same passages, also for a world with fewer cities than the default."""
    from searchr1_lite.corpus import load_corpus

    world = make_world(seed=4, people=40, cities=12, countries=3)
    assert load_corpus(world.corpus.source).checksum == world.corpus.checksum
    assert load_corpus("world:seed=4,people=40").checksum != world.corpus.checksum  # the cities count
    LocalRetriever.build(world.corpus, "bm25").save(tmp_path / "index")
    reloaded = LocalRetriever.load(tmp_path / "index")  # no corpus given: rebuilt from the manifest's source
    question = world.splits["train"][0]
    assert reloaded.search([question.question]) == LocalRetriever.build(world.corpus, "bm25").search(
        [question.question])
