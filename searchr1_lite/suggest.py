"""The "did you mean" of an error message: the name a typo most likely meant, for every place that checks a name
against a known set (config keys, world spec keys, a lesson's SETTINGS)."""
from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(word: str, names: Iterable[str]) -> str:
    """" (did you mean 'max_steps'?)" for the closest of `names` to `word`, or "" when none is close (difflib's
    ratio >= 0.6, its default: 'max_step' finds 'max_steps', 'lr' finds nothing in a list of long names)."""
    close = closest(word, names)
    return meant(close) if close else ""


def closest(word: str, names: Iterable[str]) -> str | None:
    """The one of `names` closest to `word` (difflib's ratio >= 0.6), or None."""
    close = difflib.get_close_matches(word, list(names), n=1)
    return close[0] if close else None


def meant(name: str) -> str:
    """The hint's text, for a caller that knows the right name already (config: the right key in the wrong section)."""
    return f" (did you mean {name!r}?)"
