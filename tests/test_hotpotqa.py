"""HotpotQA (distractor): questions and the corpus of their own paragraphs, loaded through the hub code path from a
small local copy laid out like the hub repo `hotpotqa/hotpot_qa` (README.md with its configs + distractor/*.parquet,
nested columns as the hub stores them). The hub itself is out of reach here."""

from __future__ import annotations

import pytest

from searchr1_lite import corpus as corpus_mod
from searchr1_lite.corpus import load_corpus
from searchr1_lite.data import HOTPOTQA_ENV, load_eval_set, load_questions
from searchr1_lite.offline import HubUnavailable

# title -> sentences, as HotpotQA stores them: every sentence after the first keeps its leading space
PARAGRAPHS = {
    "Arthur's Magazine": ["Arthur's Magazine (1844–1846) was an American literary periodical published in "
                          "Philadelphia.", " It was edited by Timothy Shay Arthur."],
    "First for Women": ["First for Women is a woman's magazine published by Bauer Media Group in the USA.",
                        " The magazine was started in 1989."],
    "Oberoi family": ["The Oberoi family is an Indian family that is famous for its involvement in hotels.",
                      " It runs them through The Oberoi Group."],
    "The Oberoi Group": ["The Oberoi Group is a hotel company with its head office in Delhi.",
                         " It was founded in 1934."],
    "Allie Goertz": ["Allie Goertz is an American musician and satirist.",
                     " She wrote a song about the Simpsons character Milhouse."],
    "Milhouse Van Houten": ["Milhouse Van Houten is a character in The Simpsons.",
                            " Matt Groening named him after President Richard Nixon, whose middle name was Milhous."],
    "Peggy Seeger": ["Peggy Seeger is an American folk singer.",
                     " She was married to the singer and songwriter James Henry Miller."],
    "Ewan MacColl": ["James Henry Miller, known as Ewan MacColl, was an English folk singer and songwriter."],
    "Cadmium chloride": ["Cadmium chloride is a white crystalline compound of cadmium and chlorine.",
                         " It is slightly soluble in ethanol."],
    "Ethanol": ["Ethanol, also called alcohol or ethyl alcohol, is a chemical compound.",
                " It is a volatile, flammable, colourless liquid."],
    "Henri Leconte": ["Henri Leconte is a French former tennis player.",
                      " He won one Grand Slam doubles title at the French Open."],
    "Jonathan Stark (tennis)": ["Jonathan Stark is an American former professional tennis player.",
                                " He won two Grand Slam doubles titles."],
    "Scott Derrickson": ["Scott Derrickson is an American director, screenwriter and producer.",
                         " He directed the film Doctor Strange."],
    "Ed Wood": ["Edward Davis Wood Jr. was an American filmmaker, actor and writer."],
    "Kiss and Tell (1945 film)": ["Kiss and Tell is a 1945 American comedy film.",
                                  " Shirley Temple plays the teenage Corliss Archer."],
    "Shirley Temple": ["Shirley Temple Black was an American actress and diplomat.",
                       " She served as Chief of Protocol of the United States."],
    "The Hork-Bajir Chronicles": ["The Hork-Bajir Chronicles is a companion book to the Animorphs series.",
                                  " It tells the story of the enslaved Hork-Bajir world."],
    "Animorphs": ["Animorphs is a science fantasy series of young adult books told in first person.",
                  " Its companion books narrate the stories of alien species."],
    "Laleli Mosque": ["The Laleli Mosque is an 18th-century Ottoman imperial mosque in the Laleli neighborhood of "
                      "Fatih, Istanbul."],
    "Esma Sultan Mansion": ["The Esma Sultan Mansion is a historical yalı on the Bosphorus in the Ortaköy "
                            "neighborhood of Istanbul."],
    "Radio City (Indian radio station)": ["Radio City is India's first private FM radio station.",
                                          " It was started on 3 July 2001."],
    "History of Albanian football": ["Football in Albania existed before the Albanian Football Federation was "
                                     "created."],
}
# the same title with another text (a different revision): a separate paragraph, not a duplicate
ETHANOL_V2 = ("Ethanol", ["Ethanol is the alcohol found in alcoholic drinks."])
ONLY_IN_LAST_TRAIN = "Jonathan Stark (tennis)"  # a gold paragraph no other question's context holds

# (id, question, answer, type, level, supporting titles)
TRAIN = [
    ("5a7a06935542990198eaf050", "Which magazine was started first Arthur's Magazine or First for Women?",
     "Arthur's Magazine", "comparison", "medium", ["Arthur's Magazine", "First for Women"]),
    ("5a879ab05542996e4f30887e", "The Oberoi family is part of a hotel company that has a head office in what city?",
     "Delhi", "bridge", "medium", ["Oberoi family", "The Oberoi Group"]),
    ("5a8d7341554299441c6b9fe5", "Musician and satirist Allie Goertz wrote a song about the \"The Simpsons\" character "
     "Milhouse, who Matt Groening named after who?", "President Richard Nixon", "bridge", "hard",
     ["Allie Goertz", "Milhouse Van Houten"]),
    ("5a82171f5542990a1d231f4a", "What nationality was James Henry Miller's wife?", "American", "bridge", "medium",
     ["Peggy Seeger", "Ewan MacColl"]),
    ("5a84dd955542997b5ce3ff79", "Cadmium Chloride is slightly soluble in this chemical, it is also called what?",
     "alcohol", "bridge", "medium", ["Cadmium chloride", "Ethanol"]),
    ("5ab3b0bf5542992ade7c6e39", "Which tennis player won more Grand Slam titles, Henri Leconte or Jonathan Stark?",
     "Jonathan Stark", "comparison", "medium", ["Henri Leconte", "Jonathan Stark (tennis)"]),
]
VALIDATION = [
    ("5a8b57f25542995d1e6f1371", "Were Scott Derrickson and Ed Wood of the same nationality?", "yes", "comparison",
     "hard", ["Scott Derrickson", "Ed Wood"]),
    ("5a8c7595554299585d9e36b6", "What government position was held by the woman who portrayed Corliss Archer in the "
     "film Kiss and Tell?", "Chief of Protocol", "bridge", "hard", ["Kiss and Tell (1945 film)", "Shirley Temple"]),
    ("5a85ea095542994775f606a8", "What science fantasy young adult series, told in first person, has a set of "
     "companion books narrating the stories of enslaved worlds and alien species?", "Animorphs", "bridge", "hard",
     ["The Hork-Bajir Chronicles", "Animorphs"]),
    ("5adbf0a255429947ff17385a", "Are the Laleli Mosque and Esma Sultan Mansion located in the same neighborhood?",
     "no", "comparison", "hard", ["Laleli Mosque", "Esma Sultan Mansion"]),
]
# 2 gold + 8 distractors each, as in the distractor setting; distractors are other questions' paragraphs, so most
# paragraphs recur across questions (what the corpus must deduplicate)
DISTRACTOR_POOL = [t for t in PARAGRAPHS if t != ONLY_IN_LAST_TRAIN]


def _row(i: int, q: tuple) -> dict:
    qid, question, answer, qtype, level, gold = q
    k = 2 * i % len(DISTRACTOR_POOL)  # a stride that puts every pool paragraph in some context
    distractors = [t for t in DISTRACTOR_POOL[k:] + DISTRACTOR_POOL[:k] if t not in gold][:8]
    context = [(t, PARAGRAPHS[t]) for t in gold + distractors]
    if i == 2:
        context[-1] = ETHANOL_V2
    return {"id": qid, "question": question, "answer": answer, "type": qtype, "level": level,
            "supporting_facts": {"title": list(gold) + [gold[0]], "sent_id": [0, 1, 0]},
            "context": {"title": [t for t, _ in context], "sentences": [s for _, s in context]}}


ROWS = {"train": [_row(i, q) for i, q in enumerate(TRAIN)],
        "validation": [_row(i + len(TRAIN), q) for i, q in enumerate(VALIDATION)]}

# The hub repo's dataset card front matter for this config (features and data_files as `hotpotqa/hotpot_qa` has them)
README = """---
dataset_info:
- config_name: distractor
  features:
  - name: id
    dtype: string
  - name: question
    dtype: string
  - name: answer
    dtype: string
  - name: type
    dtype: string
  - name: level
    dtype: string
  - name: supporting_facts
    sequence:
    - name: title
      dtype: string
    - name: sent_id
      dtype: int32
  - name: context
    sequence:
    - name: title
      dtype: string
    - name: sentences
      sequence: string
configs:
- config_name: distractor
  data_files:
  - split: train
    path: distractor/train-*
  - split: validation
    path: distractor/validation-*
---
"""


def _write_hub_copy(root):
    """README.md + distractor/{train-0000i-of-00002,validation-00000-of-00001}.parquet with the hub's arrow schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    string_list = pa.list_(pa.string())
    schema = pa.schema([("id", pa.string()), ("question", pa.string()), ("answer", pa.string()),
                        ("type", pa.string()), ("level", pa.string()),
                        ("supporting_facts", pa.struct([("title", string_list), ("sent_id", pa.list_(pa.int32()))])),
                        ("context", pa.struct([("title", string_list), ("sentences", pa.list_(string_list))]))])
    (root / "distractor").mkdir(parents=True)
    (root / "README.md").write_text(README, encoding="utf-8")
    shards = {"train-00000-of-00002": ROWS["train"][:3], "train-00001-of-00002": ROWS["train"][3:],
              "validation-00000-of-00001": ROWS["validation"]}
    for name, rows in shards.items():
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / "distractor" / f"{name}.parquet")


@pytest.fixture
def hub_copy(tmp_path, monkeypatch):
    import datasets

    root = tmp_path / "hotpot_qa"
    _write_hub_copy(root)
    monkeypatch.setenv(HOTPOTQA_ENV, str(root))
    monkeypatch.setenv("SEARCHR1_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")  # no stale prepared copy
    return root


def _unique_paragraphs(rows) -> set[tuple[str, str]]:
    return {(t, "".join(s).strip()) for r in rows for t, s in zip(r["context"]["title"], r["context"]["sentences"])}


def test_questions_come_with_answers_and_meta(hub_copy):
    train = load_questions("hotpotqa-distractor")
    assert [q.id for q in train] == [q[0] for q in TRAIN]
    assert train[1].question.endswith("head office in what city?") and train[1].answers == ["Delhi"]
    assert train[2].meta == {"supporting_titles": ["Allie Goertz", "Milhouse Van Houten"], "type": "bridge",
                             "level": "hard", "split": "train"}
    validation = load_questions("hotpotqa-distractor", split="validation")
    assert [(q.id, q.answers) for q in validation] == [(q[0], [q[2]]) for q in VALIDATION]
    with pytest.raises(ValueError, match="splits train and validation"):
        load_questions("hotpotqa-distractor", split="test")


def test_eval_set_is_the_validation_split(hub_copy):
    full = load_eval_set("hotpotqa-distractor")
    assert [q.id for q in full] == [q[0] for q in VALIDATION] and {q.meta["split"] for q in full} == {"validation"}
    sub = load_eval_set("hotpotqa-distractor", limit=2, seed=3)
    assert len(sub) == 2 and {q.id for q in sub} <= {q.id for q in full}


def test_corpus_is_the_unique_paragraphs_in_the_projects_format(hub_copy, monkeypatch):
    corpus = load_corpus("hotpotqa-distractor")
    raw = sum(len(r["context"]["title"]) for split in ROWS.values() for r in split)
    assert raw == 100 and len(corpus) == len(PARAGRAPHS) + 1 == len(_unique_paragraphs(ROWS["validation"] +
                                                                                       ROWS["train"]))
    assert len(set(corpus.contents)) == len(corpus) and len(set(corpus.ids)) == len(corpus)
    i = corpus.titles().index("Milhouse Van Houten")
    assert corpus[i].contents == ('"Milhouse Van Houten"\nMilhouse Van Houten is a character in The Simpsons. Matt '
                                  "Groening named him after President Richard Nixon, whose middle name was Milhous.")
    assert corpus.titles().count("Ethanol") == 2  # dedup is by title and text, not title alone
    assert corpus.name == corpus.source == "hotpotqa-distractor"
    cached = hub_copy.parent / "cache" / "corpora" / "hotpotqa-distractor-6000.jsonl"
    assert cached.exists()
    import searchr1_lite.data as data_mod

    monkeypatch.setattr(data_mod, "hotpotqa_split", lambda split: pytest.fail("the cached corpus was rebuilt"))
    assert load_corpus("hotpotqa-distractor").checksum == corpus.checksum


def test_every_questions_supporting_paragraphs_are_in_the_corpus(hub_copy):
    corpus = load_corpus("hotpotqa-distractor")
    by_title = {}
    for p in corpus:
        by_title.setdefault(p.title, []).append(p.text)
    for q in load_questions("hotpotqa-distractor") + load_eval_set("hotpotqa-distractor"):
        assert all(t in by_title for t in q.meta["supporting_titles"]), q.id
        if q.answers[0] not in ("yes", "no"):  # comparison questions answered yes/no quote no span
            assert any(q.answers[0] in text for t in q.meta["supporting_titles"] for text in by_title[t]), q.id


def test_train_questions_stop_where_the_corpus_does(hub_copy, monkeypatch):
    monkeypatch.setattr(corpus_mod, "HOTPOTQA_TRAIN_QUESTIONS", 5)
    assert [q.id for q in load_questions("hotpotqa-distractor")] == [q[0] for q in TRAIN[:5]]
    corpus = load_corpus("hotpotqa-distractor")
    assert ONLY_IN_LAST_TRAIN not in corpus.titles() and len(corpus) == len(PARAGRAPHS)
    assert (hub_copy.parent / "cache" / "corpora" / "hotpotqa-distractor-5.jsonl").exists()


def test_bm25_finds_the_answers(hub_copy):
    from searchr1_lite.retrieval import LocalRetriever, answer_recall

    corpus = load_corpus("hotpotqa-distractor")
    retriever = LocalRetriever.build(corpus, "bm25")
    questions = [q for q in load_eval_set("hotpotqa-distractor") + load_questions("hotpotqa-distractor")
                 if q.answers[0] not in ("yes", "no")]
    recall = answer_recall(retriever, [q.question for q in questions], [q.answers for q in questions], ks=(1, 3))
    hits = sum(any(q.answers[0].lower() in p.contents.lower() for p in top)
               for q, top in zip(questions, retriever.search([q.question for q in questions], 3)))
    assert recall["recall@3"] == hits / len(questions) and recall["recall@3"] >= 0.5
    assert 0 < recall["recall@1"] <= recall["recall@3"]


@pytest.mark.parametrize("how", ["missing local copy", "offline hub"])
def test_an_unreachable_source_names_the_offline_alternative(tmp_path, monkeypatch, how):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("SEARCHR1_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    if how == "missing local copy":
        monkeypatch.setenv(HOTPOTQA_ENV, str(tmp_path / "no-such-folder"))
    else:  # the hub id itself, with the hub switched off (never a real download from a test)
        monkeypatch.delenv(HOTPOTQA_ENV, raising=False)
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for load in (lambda: load_questions("hotpotqa-distractor"), lambda: load_eval_set("hotpotqa-distractor", 5),
                 lambda: load_corpus("hotpotqa-distractor")):
        with pytest.raises(HubUnavailable) as err:
            load()
        message = str(err.value)
        assert HOTPOTQA_ENV in message and "hotpotqa/hotpot_qa" in message and "fanoutqa" in message
        assert ("no-such-folder" if how == "missing local copy" else "'hotpotqa/hotpot_qa'") in message
    assert not list((tmp_path / "cache" / "corpora").glob("*.jsonl"))  # no half-built corpus left behind
