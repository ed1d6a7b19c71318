"""Question-answer data. Lesson 01 needs the offline set: FanOutQA's single-hop sub-questions over wiki-vital.

FanOutQA (dev, 310 multi-hop questions) decomposes each question into single-hop sub-questions, each with a gold
answer and the Wikipedia page it comes from. About 90 of them are answerable from the 10,033 lead summaries of
wiki-vital: the evidence page is in the corpus and its summary contains the answer. We keep exactly those.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .corpus import Corpus, numbered_lines
from .offline import HubUnavailable, package_file
from .reward import contains_answer, normalize_answer


@dataclass
class QAExample:
    id: str
    question: str
    answers: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def _leaves(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if node.get("decomposition"):
        for child in node["decomposition"]:
            yield from _leaves(child)
    else:
        yield node


def fanoutqa_subquestions(corpus: Corpus | None = None) -> list[QAExample]:
    """Single-answer leaf sub-questions of FanOutQA dev; with `corpus`, only those its evidence page answers."""
    path = package_file("fanoutqa", "data/fanout-final-dev.json")
    questions = json.loads(path.read_text(encoding="utf-8"))
    by_title = {}
    if corpus is not None:
        for i, title in enumerate(corpus.titles()):
            by_title.setdefault(title, i)
    out, seen = [], set()
    for q in questions:
        for leaf in (_l for d in q["decomposition"] for _l in _leaves(d)):
            answer = leaf.get("answer")
            if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or leaf["id"] in seen:
                continue  # lists of answers ("the first 5 picks") are not single-answer questions
            title = (leaf.get("evidence") or {}).get("title", "")
            ex = QAExample(leaf["id"], leaf["question"], [str(answer)], {"evidence_title": title, "parent": q["id"]})
            if corpus is not None:
                i = by_title.get(title)
                if i is None or not contains_answer(corpus.contents[i], ex.answers):
                    continue
                ex.meta["evidence_id"] = corpus.ids[i]
            seen.add(leaf["id"])
            out.append(ex)
    return out


AUTHORS_TRAIN = "PeterJinGo/nq_hotpotqa_train"  # the authors' NQ + HotpotQA training mix (hub dataset)


def read_qa_jsonl(path: str | Path) -> list[QAExample]:
    """FlashRAG-style jsonl: {"id"?, "question": str, "golden_answers": [str, ...]}; bad rows name file:line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such question file")
    out = []
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: expected an object, {{\"question\": ..., \"golden_answers\": [...]}}, "
                             f"got a JSON {type(row).__name__}")
        q, golds = row.get("question"), row.get("golden_answers")
        if not isinstance(q, str) or not q.strip():
            raise ValueError(f"{path}:{lineno}: 'question' must be a non-empty string")
        if isinstance(golds, str):
            golds = [golds]
        if not isinstance(golds, list) or not golds or not all(isinstance(g, (str, int, float)) for g in golds):
            raise ValueError(f"{path}:{lineno}: 'golden_answers' must be a non-empty list of strings")
        if empty := [g for g in golds if not normalize_answer(str(g))]:
            # EM compares normalised answers: a gold of "", "." or "the" would reward an answer of "." as right
            raise ValueError(f"{path}:{lineno}: golden answer {empty[0]!r} is empty once normalised (punctuation "
                             "and articles removed), so any empty answer would match it; fix or drop it")
        out.append(QAExample(str(row.get("id", lineno)), q, [str(g) for g in golds]))
    return out


# HotpotQA, distractor setting: each question comes with its 2 gold paragraphs and 8 distractors, and the
# `hotpotqa-distractor` corpus is those paragraphs, so every question's supporting paragraphs are retrievable.
HOTPOTQA = "hotpotqa/hotpot_qa"  # hub dataset: config "distractor", splits train (90,447) / validation (7,405)
HOTPOTQA_SET = "hotpotqa-distractor"
HOTPOTQA_ENV = "SEARCHR1_LITE_HOTPOTQA"  # a local folder laid out like the hub repo (README.md + distractor/*.parquet)


def hotpotqa_source() -> str:
    return os.environ.get(HOTPOTQA_ENV) or HOTPOTQA


def hotpotqa_split(split: str):
    """The distractor rows of `split` (hub or $SEARCHR1_LITE_HOTPOTQA). Train is cut to the questions the corpus
    covers: only the first HOTPOTQA_TRAIN_QUESTIONS have their paragraphs in it."""
    import datasets

    from .corpus import HOTPOTQA_TRAIN_QUESTIONS  # read at call time: the corpus and the questions agree on it

    if split not in ("train", "validation"):
        raise ValueError(f"HotpotQA distractor has splits train and validation, not {split!r}")
    source = hotpotqa_source()
    if split == "train":
        split = f"train[:{HOTPOTQA_TRAIN_QUESTIONS}]"
    try:
        return datasets.load_dataset(source, "distractor", split=split)
    except (ConnectionError, FileNotFoundError) as e:  # offline, the hub is down, or no such local copy
        raise HubUnavailable(f"HotpotQA (distractor) comes from {source!r}, which is unreachable ({e}). Offline: "
                             f"set ${HOTPOTQA_ENV} to a local copy of the hub repo {HOTPOTQA} (README.md and "
                             "distractor/*.parquet), or use the fanoutqa questions with the wiki-vital corpus"
                             ) from None


def hotpotqa_questions(split: str = "train") -> list[QAExample]:
    """HotpotQA distractor questions; meta names the supporting paragraphs' titles, the type and the level."""
    return [QAExample(r["id"], r["question"], [r["answer"]],
                      {"supporting_titles": list(dict.fromkeys(r["supporting_facts"]["title"])),
                       "type": r["type"], "level": r["level"], "split": split})
            for r in hotpotqa_split(split)]


def load_questions(name: str, corpus: Corpus | None = None, split: str = "train") -> list[QAExample]:
    """`fanoutqa` (offline; pass wiki-vital as corpus to keep the answerable ones), the authors' `nq_hotpotqa_train`
    (hub), `hotpotqa-distractor` (hub; train or validation, over the corpus of that name), or a path to a
    FlashRAG-style jsonl, or a synthetic world's split (`world` or `world:seed=1,...`; train, dev or test)."""
    from .world import is_world_spec, load_world  # here: world imports this module

    if is_world_spec(name):
        return load_world(name).splits[split]
    if name == "fanoutqa":
        examples = fanoutqa_subquestions(corpus)
        if not examples:  # a corpus without FanOutQA's pages (an index built on another corpus)
            raise ValueError(f"no FanOutQA question is answerable from corpus {getattr(corpus, 'name', corpus)!r}: "
                             "they are kept only when the corpus holds their page with the answer. Use the "
                             "wiki-vital corpus (or an index built on it), or questions of your own (a jsonl path)")
        return examples
    if name == "nq_hotpotqa_train":
        import datasets

        try:
            ds = datasets.load_dataset(AUTHORS_TRAIN, split=split)
        except (ConnectionError, FileNotFoundError) as e:  # offline, or the hub is down
            raise HubUnavailable(f"the authors' training set comes from the hub ({AUTHORS_TRAIN}), which is "
                                 f"unreachable ({e}). Offline: fanoutqa, a world (world:seed=0,...) or a "
                                 "jsonl path") from None
        return [QAExample(str(r.get("id", i)), r["question"], list(r["golden_answers"])) for i, r in enumerate(ds)]
    if name == HOTPOTQA_SET:
        return hotpotqa_questions(split)
    if Path(name).expanduser().exists() or name.endswith((".jsonl", ".json")):  # as load_corpus: `~/q.jsonl` too
        return read_qa_jsonl(Path(name).expanduser())  # a path that is not there: "no such question file"
    raise ValueError(f"unknown question set {name!r}: use fanoutqa, nq_hotpotqa_train, {HOTPOTQA_SET}, a world "
                     "(world:seed=0,...) or a jsonl path")


# The seven test sets of the paper's table, in FlashRAG's hub copy (RUC-NLPIR/FlashRAG_datasets): config -> split
FLASHRAG = "RUC-NLPIR/FlashRAG_datasets"
EVAL_SETS = {"nq": "test", "triviaqa": "test", "popqa": "test", "hotpotqa": "dev", "2wikimultihopqa": "dev",
             "musique": "dev", "bamboogle": "test"}


def load_eval_set(name: str, limit: int | None = None, seed: int = 0, corpus: Corpus | None = None) -> list[QAExample]:
    """A test set by name (FlashRAG hub copy), `hotpotqa-distractor` (its validation split), `fanoutqa` (offline), or
    a local FlashRAG-format jsonl; with `limit`, a seeded random subset (full test sets are large)."""
    import random

    if name in EVAL_SETS:
        import datasets

        try:
            ds = datasets.load_dataset(FLASHRAG, name, split=EVAL_SETS[name])
        except (ConnectionError, FileNotFoundError) as e:  # offline, or the hub is down
            raise HubUnavailable(f"test set {name!r} comes from the hub ({FLASHRAG}), which is unreachable ({e}). "
                                 "Offline: --datasets fanoutqa, or a local FlashRAG-format jsonl path") from None
        examples = [QAExample(str(r.get("id", i)), r["question"], [str(a) for a in r["golden_answers"]])
                    for i, r in enumerate(ds)]
    elif name == HOTPOTQA_SET:
        examples = hotpotqa_questions("validation")  # never the train questions a run learns from
    elif name == "fanoutqa" or Path(name).expanduser().exists():
        examples = load_questions(name, corpus)
    elif name.endswith((".jsonl", ".gz")) or "/" in name:
        raise FileNotFoundError(f"test set {name!r}: no such file (a FlashRAG-format jsonl path, or one of "
                                f"{', '.join(EVAL_SETS)}, {HOTPOTQA_SET}, fanoutqa)")
    else:
        raise ValueError(f"unknown test set {name!r}: use {', '.join(EVAL_SETS)} (hub), {HOTPOTQA_SET} (hub), "
                         "fanoutqa (offline) or a FlashRAG-format jsonl path")
    if limit is not None and limit < len(examples):
        examples = random.Random(seed).sample(examples, limit)
    return examples
