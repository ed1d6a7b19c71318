"""Reward: answer normalisation, exact match and F1, as in SQuAD and the Search-R1 paper.

The reward of a trajectory is exact match (EM) between its answer and any gold answer. The answer is read only from
text the policy *generated*: the `<answer>` of its final action. The authors instead search prompt + response for
`<answer>…</answer>`, take the last match, and return no answer when there are fewer than 2 matches, meant to skip the
instruction's example. But their instruction holds two complete pairs ("inside <answer> and </answer>" and
"<answer> Beijing </answer>"), so that guard never fires, and a response with no answer of its own scores as
"Beijing". Reading the response only gives what the guard was meant to. F1 is reported as a metric, not used as reward.

Extension, off by default: `format_bonus` > 0 gives that reward to a wrong answer from a well-formed trajectory (every
turn a valid action, ending in an answer), a shaping some follow-up work uses when a small model rarely produces
the format at all. The paper's reward is `format_bonus = 0`.

Extension, off by default: `extra_search_cost` > 0 takes that much from a right answer's reward for each search after
the first, so that of two right answers in a group GRPO prefers the one that searched less. It gives single-hop
questions a signal where every sample is right and some searched twice (docs/multi-hop section 25). A wrong answer
keeps 0, so no search is ever cheaper than a right answer. OTC-PO (Wang et al., 2025, arXiv 2504.14870) scales a right
answer's reward by a tool-call term in the same spirit. The paper's reward is `extra_search_cost = 0`.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, squeeze whitespace (SQuAD's normaliser)."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(golds: Sequence[str] | str) -> list[str]:
    return [golds] if isinstance(golds, str) else [str(g) for g in golds]


def exact_match(prediction: str | None, golds: Sequence[str] | str) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0 (None scores 0)."""
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _golds(golds)))


def f1_score(prediction: str | None, golds: Sequence[str] | str) -> float:
    """Token-level F1 against the best-matching gold answer (SQuAD)."""
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in _golds(golds):
        ref = normalize_answer(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
        elif not pred and not ref:
            best = 1.0
    return best


def contains_answer(text: str, golds: Sequence[str] | str) -> bool:
    """Does `text` contain any gold answer after normalisation (substring match, as answer-recall metrics do)?"""
    haystack = normalize_answer(text)
    return any(n and n in haystack for n in (normalize_answer(g) for g in _golds(golds)))


def extract_answer(generated: str) -> str | None:
    """The last complete `<answer>…</answer>` of a generated text (stripped), or None. Pass generated text only."""
    # The same matches as re.finditer(r"<answer>(.*?)</answer>", DOTALL), found with str.find so that a text of
    # many unclosed tags stays linear (the regex rescans to the end from every opening tag: quadratic).
    last, pos = None, 0
    while (start := generated.find("<answer>", pos)) >= 0:
        end = generated.find("</answer>", start + 8)
        if end < 0:
            break
        last, pos = generated[start + 8 : end], end + 9
    return None if last is None else last.strip()


def trajectory_reward(answer: str | None, golds: Sequence[str] | str, well_formed: bool = False,
                      format_bonus: float = 0.0, searches: int = 0, extra_search_cost: float = 0.0) -> float:
    """EM of the answer; with the optional extensions, `format_bonus` for a well-formed wrong answer, and a right
    answer less `extra_search_cost` for each of its `searches` after the first (never below 0)."""
    em = exact_match(answer, golds)
    if em == 0.0 and format_bonus and well_formed and answer is not None:
        return float(format_bonus)
    if em and extra_search_cost:
        return max(0.0, em - extra_search_cost * max(0, searches - 1))
    return em
