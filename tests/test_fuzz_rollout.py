"""Random trajectories through the real rollout loop, with the real Qwen2.5 and SmolLM2 tokenizers (hypothesis).

A scripted model plays random turns (well-formed searches and answers, tag soup, bare text, tags cut mid-way) and
the retriever returns passages of random lengths and characters. Whatever happens, the masks must say exactly
which tokens the model sampled: every position with gen_mask = 1 holds the token the model chose given everything
before it, and every other response position lies in an inserted block (passages or the invalid-action note)."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from searchr1_lite.corpus import Passage
from searchr1_lite.prompt import INVALID_ACTION_FEEDBACK
from searchr1_lite.rollout import RolloutConfig, rollout
from searchr1_lite.scripted import ScriptCache, ScriptedLM

CASES = 100  # per tokenizer: each case is a whole batched rollout (1-3 trajectories, up to 4 turns)
WORDS = ["Paris", "Kalmar", "is", "a", "city", "born", "in", "wrote", "the", "Ünïcødé", "東京", "🙂", "\t", "--", "'"]
TAGS = ["<search>", "</search>", "<answer>", "</answer>", "<think>", "</think>", "<information>", "</information>",
        "<sear", "ch>", "</ans", "wer>", "<", ">", "/"]

words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)
soup = st.lists(st.one_of(st.sampled_from(TAGS), st.sampled_from(WORDS), st.text(max_size=6)), max_size=20).map("".join)
turn = st.one_of(
    st.builds("<think> {} </think>\n<search> {} </search>".format, words, words),
    st.builds("<think> {} </think>\n<answer> {} </answer>".format, words, words),
    st.builds("<search> {} </search>".format, soup),
    soup,
    st.text(max_size=40),
)
scripts = st.lists(st.lists(turn, min_size=1, max_size=4), min_size=1, max_size=3)


class RandomRetriever:
    """Passages of random length and characters (drawn per call from a seeded generator)."""

    def __init__(self, seed: int, max_words: int):
        self.rng, self.max_words = random.Random(seed), max_words

    def search(self, queries, k=3):
        def text():
            return " ".join(self.rng.choice(WORDS + TAGS) for _ in range(self.rng.randint(0, self.max_words)))

        return [[Passage(f"{j}", f'"{text()[:30]}"\n{text()}') for j in range(k)] for _ in queries]


def _check(res, lm: ScriptedLM, tokenizer):
    for row, t in enumerate(res.trajectories):
        assert len(t.ids) == len(t.gen_mask) == len(t.logprobs)
        assert not any(t.gen_mask[: t.prompt_len])
        pos = t.prompt_len
        for turn in t.turns:  # sampled run, then inserted run, tiling the response
            for p in range(pos, pos + turn.generated):
                assert t.gen_mask[p] == 1 and t.logprobs[p] > -1e-3  # the scripted model puts all mass on its token
                context = ScriptCache(row + 1)
                context.history[row] = t.ids[:p]
                assert t.ids[p] == lm._next_token(context, row), (row, p)  # what the model chose given the context
            pos += turn.generated
            inserted = t.ids[pos : pos + turn.inserted]
            assert not any(t.gen_mask[pos : pos + turn.inserted]) and not any(t.logprobs[pos : pos + turn.inserted])
            text = tokenizer.decode(inserted)
            assert text == "" or text.startswith("\n\n<information>") or text == INVALID_ACTION_FEEDBACK, text
            pos += turn.inserted
        assert pos == len(t.ids)
        assert t.answer is None or t.answer == t.answer.strip()


@pytest.fixture(scope="module", params=["qwen25", pytest.param("smollm2", marks=pytest.mark.slow)])
def tokenizer(request):
    """The real tokenizers the masks must hold for (module-scoped: hypothesis reuses it across its cases)."""
    from searchr1_lite.models import load_model, qwen25_tokenizer

    return qwen25_tokenizer() if request.param == "qwen25" else load_model("smollm2-135m-instruct")[1]


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(script=scripts, max_turns=st.integers(1, 3), max_new=st.integers(2, 40), max_obs=st.integers(4, 120),
       passage_words=st.integers(0, 60), seed=st.integers(0, 99))
def test_random_trajectories_keep_exact_masks(tokenizer, script, max_turns, max_new, max_obs, passage_words, seed):
    lm = ScriptedLM(tokenizer, script)
    cfg = RolloutConfig(max_turns=max_turns, max_new_tokens=max_new, max_obs_tokens=max_obs,
                        max_total_tokens=900, seed=seed)
    res = rollout(lm, tokenizer, [f"question {i}" for i in range(len(script))],
                  RandomRetriever(seed, passage_words), cfg)
    assert len(res.trajectories) == len(script)
    _check(res, lm, tokenizer)
