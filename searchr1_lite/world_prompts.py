"""The synthetic world's prompts (`searchr1-lite demo`): worked examples in the world's style, for every method.

A deviation from the paper that a 135M model needs (measured: docs/demo.md, "What the 135M model needed"): the paper's
instruction with worked examples before the question, each formatted exactly as a rollout writes it (the inserted
block byte for byte).
Direct and RAG get the same examples in their own formats, so no method is handicapped by the tag format.
Templates are found by name through `prompt.search_template` and `evaluate.method_templates`.
"""

from __future__ import annotations

from typing import Sequence

from .corpus import Passage, format_docs
from .evaluate import DIRECT_TEMPLATE, RAG_TEMPLATE
from .prompt import SEARCH_R1_INSTRUCTION, information_block, with_examples

# Deviation for the synthetic world (`searchr1-lite demo`): two *single-hop* worked examples, formatted
# exactly as a rollout is (the inserted block byte for byte). They show the tags and one search; searching twice for
# a two-hop question is left for reinforcement learning to find. Names are not in any generated world.
_WORLD_EXAMPLE_ROWS = [  # (question, query, passages as (title, text), thought, answer)
    ("Where was Anna Lind born?", "Anna Lind",
     [("Anna Lind", "Anna Lind is a singer who was born in Kalmar."),
      ("The Red Door", "The Red Door is a novel written by Ole Berg."), ("Umea", "Umea is a city in Sweden.")],
     "Anna Lind was born in Kalmar.", "Kalmar"),
    ("Who wrote The Red Door?", "The Red Door",
     [("The Red Door", "The Red Door is a novel written by Ole Berg."),
      ("The Blue Door", "The Blue Door is a poem written by Anna Lind."), ("Kalmar", "Kalmar is a city in Sweden.")],
     "The Red Door was written by Ole Berg.", "Ole Berg"),
]


def _passages(rows: Sequence[tuple[str, str]]) -> list[Passage]:
    return [Passage(str(i), f'"{title}"\n{text}') for i, (title, text) in enumerate(rows)]


WORLD_EXAMPLE_FACTS = [(q, s, _passages(d), th, a) for q, s, d, th, a in _WORLD_EXAMPLE_ROWS]


def _worked_example(question: str, searches: Sequence[tuple[str, str, Sequence[Passage]]], thought: str,
                    answer: str) -> str:
    """One question solved as a rollout writes it: per search (thought, query, passages), then the answer."""
    text = f"Question: {question}\n"
    for before, query, passages in searches:
        text += f"<think> {before} </think>\n<search> {query} </search>{information_block(passages)}"
    return text + f"<think> {thought} </think>\n<answer> {answer} </answer>\n\n"


_WORLD_SINGLE_HOP = [_worked_example(q, [(f"I need to find {s}.", s, d)], th, a)
                     for q, s, d, th, a in WORLD_EXAMPLE_FACTS]
WORLD_EXAMPLES = "".join(_WORLD_SINGLE_HOP)
SEARCH_R1_WITH_WORLD_EXAMPLES = with_examples(SEARCH_R1_INSTRUCTION, WORLD_EXAMPLES)

_ANNA = _passages([("Anna Lind", "Anna Lind is a singer who was born in Kalmar."),
                   ("The Red Door", "The Red Door is a novel written by Ole Berg."),
                   ("Aarhus", "Aarhus is a city in Denmark.")])
_KALMAR = _passages([("Kalmar", "Kalmar is a city in Sweden."), ("Turku", "Turku is a city in Finland."),
                     ("Anna Lind", "Anna Lind is a singer who was born in Kalmar.")])

# An experiment, not the demo's recipe (docs/demo.md, "How the curriculum was found"): one worked example of each
# kind about the same person, the single-hop birthplace one above and a two-hop one that searches twice. Untrained,
# it separates the kinds (two searches pay on two-hop questions only) but halves well-formed answers and makes a CPU
# step ~1.7x slower.
_TWO_SEARCHES = [("I need to find Anna Lind.", "Anna Lind", _ANNA),  # Anna Lind, then her city
                 ("Anna Lind was born in Kalmar. I need to find Kalmar.", "Kalmar", _KALMAR)]
WORLD_TWO_HOP_EXAMPLE = _worked_example("In which country was Anna Lind born?", _TWO_SEARCHES,
                                        "Kalmar is a city in Sweden.", "Sweden")
SEARCH_R1_WITH_WORLD_HOP_EXAMPLES = with_examples(SEARCH_R1_INSTRUCTION, _WORLD_SINGLE_HOP[0] + WORLD_TWO_HOP_EXAMPLE)

# Issue 18, an experiment: one example of each single-hop kind and the two-hop one, whose thoughts name the kind of
# answer the question asks for ("The answer is a country.") and of each name found ("Kalmar, a city"). Whether to
# search again can then be read from words the policy wrote just before, not from a question far above. Its turns are
# longer: give it max_new_tokens 56 (a two-hop author question's second thought is ~48 tokens). After the demo's
# phase 1 it did not help: two-hop EM stayed near 0 (docs/multi-hop/, section 5).
WORLD_TYPED_EXAMPLES = (
    _worked_example("Where was Anna Lind born?",
                    [("The answer is a city. I need to find Anna Lind.", "Anna Lind", _ANNA)],
                    "The answer is a city. Anna Lind was born in Kalmar, a city.", "Kalmar")
    + _worked_example("Who wrote The Red Door?",
                      [("The answer is a person. I need to find The Red Door.", "The Red Door",
                        WORLD_EXAMPLE_FACTS[1][2])],
                      "The answer is a person. The Red Door was written by Ole Berg, a person.", "Ole Berg")
    + _worked_example("In which country was Anna Lind born?",
                      [("The answer is a country. I need to find Anna Lind.", "Anna Lind", _ANNA),
                       ("The answer is a country. Anna Lind was born in Kalmar, a city. I need to find Kalmar.",
                        "Kalmar", _KALMAR)],
                      "The answer is a country. Kalmar is a city in Sweden, a country.", "Sweden"))
SEARCH_R1_WITH_WORLD_TYPED_EXAMPLES = with_examples(SEARCH_R1_INSTRUCTION, WORLD_TYPED_EXAMPLES)

# Issue 18, an experiment: the author example's one search, then the same two searches for a birthplace question and
# for its country question, answered differently ("The question asks for the city: Kalmar." / "... the country:
# Sweden."). Every phase-2 policy answered with the last name it read, so the number of searches fixed the answer
# (docs/multi-hop/, section 12); here only the question may choose the name. It did not help (section 15): the policy
# never wrote "asks for the country:", and after "asks for the city:" it wrote the last name it read.
WORLD_SAME_SEARCHES_EXAMPLES = (
    _WORLD_SINGLE_HOP[1]
    + _worked_example("Where was Anna Lind born?", _TWO_SEARCHES,
                      "Kalmar is a city in Sweden. The question asks for the city: Kalmar.", "Kalmar")
    + _worked_example("In which country was Anna Lind born?", _TWO_SEARCHES,
                      "Kalmar is a city in Sweden. The question asks for the country: Sweden.", "Sweden"))
SEARCH_R1_WITH_WORLD_SAME_SEARCHES = with_examples(SEARCH_R1_INSTRUCTION, WORLD_SAME_SEARCHES_EXAMPLES)

# For a world of two kinds (`kinds=birthplace+author_birthplace`): the birthplace example and the author chain
# (docs/multi-hop/, section 8, which also kept the country chain). Here the first passage says whether to search
# again: a city answers "Where was P born?", a book's author is the bridge to search next. Phase 2 learned the chain
# with it (section 17, docs/demo-cpu-author-chain/) once a turn could hold 64 tokens: the second turn needs 42-45.
_OLE = _passages([("Ole Berg", "Ole Berg is a poet who was born in Umea."), ("Umea", "Umea is a city in Sweden."),
                  ("The Red Door", "The Red Door is a novel written by Ole Berg.")])
WORLD_AUTHOR_CHAIN_EXAMPLE = _worked_example(
    "Where was the author of The Red Door born?",
    [("I need to find The Red Door.", "The Red Door", WORLD_EXAMPLE_FACTS[1][2]),
     ("The Red Door was written by Ole Berg. I need to find Ole Berg.", "Ole Berg", _OLE)],
    "Ole Berg was born in Umea.", "Umea")
SEARCH_R1_WITH_WORLD_AUTHOR_CHAIN = with_examples(SEARCH_R1_INSTRUCTION,
                                                  _WORLD_SINGLE_HOP[0] + WORLD_AUTHOR_CHAIN_EXAMPLE)

WORLD_TEMPLATES = {"world-examples": SEARCH_R1_WITH_WORLD_EXAMPLES,
                   "world-two-hop-example": SEARCH_R1_WITH_WORLD_HOP_EXAMPLES,
                   "world-typed-examples": SEARCH_R1_WITH_WORLD_TYPED_EXAMPLES,
                   "world-same-searches": SEARCH_R1_WITH_WORLD_SAME_SEARCHES,
                   "world-author-chain": SEARCH_R1_WITH_WORLD_AUTHOR_CHAIN}

# The same two single-hop examples for Direct and RAG, in their methods' own formats.
_DIRECT_EXAMPLES = "".join(f"Question: {q}\n<think> {t} </think>\n<answer> {a} </answer>\n\n"
                           for q, _, _, t, a in WORLD_EXAMPLE_FACTS)
_RAG_EXAMPLES = "".join(f"Context: {format_docs(docs).strip()}\nQuestion: {q}\n"
                        f"<think> {t} </think>\n<answer> {a} </answer>\n\n"
                        for q, _, docs, t, a in WORLD_EXAMPLE_FACTS)
# The demo's RAG instruction: the authors' less one sentence, the passages before the question (this package's RAG
# prompt before it took the authors' own; the demo's reports were measured with it)
_WORLD_RAG_TEMPLATE = (
    RAG_TEMPLATE.replace("You should first have a reasoning process in mind and then provides the answer. ", "")
    .replace("Question: {question} Context: {context}\n \n", "Context: {context}\nQuestion: {question}\n"))
WORLD_METHOD_TEMPLATES = {"direct": with_examples(DIRECT_TEMPLATE, _DIRECT_EXAMPLES),
                          "rag": with_examples(_WORLD_RAG_TEMPLATE, _RAG_EXAMPLES),
                          "search": SEARCH_R1_WITH_WORLD_EXAMPLES}
