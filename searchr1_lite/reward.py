"""Reward: answer normalisation and exact match, as in SQuAD and the Search-R1 paper.

Lesson 02 adds the answer parser and the trajectory reward; lesson 01 already needs `normalize_answer` to ask
"does this passage contain the answer?" for recall@k.
"""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, squeeze whitespace (SQuAD's normaliser)."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: list[str] | str) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    golds = [golds] if isinstance(golds, str) else golds
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def contains_answer(text: str, golds: list[str] | str) -> bool:
    """Does `text` contain any gold answer after normalisation (substring match, as answer-recall metrics do)?"""
    golds = [golds] if isinstance(golds, str) else golds
    haystack = normalize_answer(text)
    return any(n and n in haystack for n in (normalize_answer(g) for g in golds))
