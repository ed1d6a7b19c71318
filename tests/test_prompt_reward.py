"""The parser and the reward take arbitrary model output: property-based tests (hypothesis) and pinned cases."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchr1_lite.corpus import Passage
from searchr1_lite.prompt import (
    SEARCH_R1_INSTRUCTION,
    build_prompt,
    information_block,
    normalize_question,
    parse_action,
)
from searchr1_lite.reward import (
    contains_answer,
    exact_match,
    extract_answer,
    f1_score,
    normalize_answer,
    trajectory_reward,
)

TAGS = ["<search>", "</search>", "<answer>", "</answer>", "<think>", "</think>", "<information>", "</information>"]
fragments = st.one_of(st.sampled_from(TAGS), st.text(max_size=12), st.sampled_from([" ", "\n", "Paris", "<", ">", "/"]))
tag_soup = st.lists(fragments, max_size=30).map("".join)
anything = st.one_of(st.text(max_size=300), tag_soup,
                     st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")))
EXAMPLES = settings(max_examples=2500, deadline=None)


@EXAMPLES
@given(anything)
def test_parser_never_raises_and_is_deterministic(text):
    a = parse_action(text)
    assert a == parse_action(text) and a.kind in ("search", "answer", "invalid")
    if a.valid:
        assert a.content and a.content == a.content.strip()
        assert f"<{a.kind}>" in text and f"</{a.kind}>" in text and a.content in text
    else:
        assert a.reason and a.content == ""


@EXAMPLES
@given(tag_soup)
def test_no_closing_tag_is_always_invalid(text):
    if "</search>" not in text and "</answer>" not in text:
        assert parse_action(text).kind == "invalid"


@EXAMPLES
@given(st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=40),
       st.text(alphabet=st.characters(blacklist_characters="<>"), min_size=1, max_size=40),
       st.sampled_from(["search", "answer"]))
def test_a_clean_action_agrees_with_the_authors_regex(before, content, kind):
    text = f"{before}<{kind}>{content}</{kind}>"
    authors = re.search(r"<(search|answer)>(.*?)</\1>", text, re.DOTALL)
    ours = parse_action(text)
    if content.strip():
        assert (ours.kind, ours.content) == (authors.group(1), authors.group(2).strip())
    else:
        assert ours.kind == "invalid" and ours.reason.startswith("empty")


@EXAMPLES
@given(anything, st.lists(st.text(max_size=20), min_size=1, max_size=3))
def test_reward_is_bounded_and_deterministic(text, golds):
    answer = extract_answer(text)
    em, f1 = exact_match(answer, golds), f1_score(answer, golds)
    assert em in (0.0, 1.0) and 0.0 <= f1 <= 1.0 and (em == 0.0 or f1 == 1.0)
    assert (em, f1) == (exact_match(answer, golds), f1_score(answer, golds))
    assert exact_match(text, [text]) == 1.0


@EXAMPLES
@given(tag_soup)
def test_extract_answer_matches_the_regex_oracle(text):
    matches = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
    assert extract_answer(text) == (matches[-1].strip() if matches else None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>hmm</think>\n<search> Mona Lisa painter </search>", ("search", "Mona Lisa painter")),
        ("<think>done</think><answer> Leonardo da Vinci </answer>", ("answer", "Leonardo da Vinci")),
        ("I will just say it: Paris", ("invalid", "no <search> or <answer>")),
        ("<search> unclosed query", ("invalid", "unclosed <search>")),
        ("<search>   </search>", ("invalid", "empty query")),
        ("<answer></answer>", ("invalid", "empty answer")),
        ("<search> a <answer> b </answer> </search>", ("invalid", "nested tags: <answer> inside <search>")),
        ("<think> maybe <search> x </search> </think>", ("invalid", "<search> inside <think>")),
        ("<think> never closed <answer> y </answer>", ("invalid", "<answer> inside <think>")),
        ("<search> q </search><answer> a </answer>", ("invalid", "both <search> and <answer> in one turn")),
        ("</search> stray", ("invalid", "</search> without <search>")),
        ("<search> q </answer>", ("invalid", "nested tags: </answer> closes <search>")),
        ("<Search> q </Search>", ("invalid", "no <search> or <answer>")),
        ("<search> q <information> d </information> </search>", ("invalid", "<information> inside <search>")),
        ("<answer> a <information> d </information> </answer>", ("invalid", "<information> inside <answer>")),
    ],
)
def test_pinned_actions(text, expected):
    a = parse_action(text)
    assert (a.kind, a.content if a.valid else a.reason) == expected


def test_huge_and_tag_heavy_outputs_are_data_not_a_crash():
    """Megabytes of tags parse to what a short turn would (the parser is linear: the old regex took minutes on the
    second string; its speed is not timed here)."""
    for text, (kind, why) in [("<search>" * 200_000, ("invalid", "nested tags: <search> inside <search>")),
                              ("<answer>" * 200_000, ("invalid", "nested tags: <answer> inside <answer>")),
                              ("<think>" + "x" * 2_000_000, ("invalid", "no <search> or <answer>")),
                              ("</search>" * 100_000, ("invalid", "</search> without <search>")),
                              ("<search>a</search>" * 50_000, ("search", "a"))]:
        a = parse_action(text)
        assert (a.kind, a.content if a.valid else a.reason) == (kind, why)
        assert extract_answer(text) is None  # no </answer> anywhere


def test_the_prompt_is_the_authors_template(qwen_tok=None):
    text = SEARCH_R1_INSTRUCTION.format(question=normalize_question("who painted the mona lisa"))
    assert text.startswith("Answer the given question. You must conduct reasoning inside <think> and </think> first")
    assert "You can search as many times as your want." in text
    assert text.endswith("For example, <answer> Beijing </answer>. Question: who painted the mona lisa?\n")
    from searchr1_lite.models import qwen25_tokenizer

    chat = build_prompt("who painted the mona lisa", qwen25_tokenizer())
    assert chat.startswith("<|im_start|>system\n") and chat.endswith(text + "<|im_end|>\n<|im_start|>assistant\n")
    assert build_prompt("Q?", None, template="{question} A:") == "Q? A:"  # templates are data


def test_information_block_and_reward_read_generated_text_only():
    block = information_block([Passage("1", '"Mona Lisa"\nA portrait.')])
    assert block == '\n\n<information>Doc 1(Title: "Mona Lisa") A portrait.</information>\n\n'
    prompt = SEARCH_R1_INSTRUCTION.format(question="Capital of China?")
    assert extract_answer(prompt) == "Beijing"  # why the prompt must never be parsed for the answer
    assert trajectory_reward(extract_answer("<answer> The Beijing. </answer>"), ["beijing"]) == 1.0
    assert trajectory_reward(None, ["Beijing"]) == 0.0
    assert trajectory_reward("Shanghai", ["Beijing"], well_formed=True, format_bonus=0.2) == 0.2
    assert trajectory_reward("Shanghai", ["Beijing"], well_formed=True) == 0.0  # off by default
    # extra_search_cost: a right answer pays for each search after the first; a wrong one stays 0; off by default
    assert [trajectory_reward("Beijing", ["Beijing"], searches=n, extra_search_cost=0.1) for n in range(4)] == \
        pytest.approx([1.0, 1.0, 0.9, 0.8])
    assert trajectory_reward("Shanghai", ["Beijing"], searches=3, extra_search_cost=0.1) == 0.0
    assert trajectory_reward("Beijing", ["Beijing"], searches=12, extra_search_cost=0.1) == 0.0  # never below 0
    assert trajectory_reward("Beijing", ["Beijing"], searches=3) == 1.0
    assert normalize_answer("  The  Eiffel-Tower! ") == "eiffeltower"
    assert f1_score("Leonardo da Vinci", ["da Vinci"]) == pytest.approx(0.8)


def test_any_gold_answer_counts_and_an_empty_gold_matches_nothing():
    """A question has several gold answers (aliases): matching any one is right, the first or a later one. A gold that
    normalises to nothing ("the", "!") is no answer: it is not a substring of every passage (answer recall)."""
    golds = ["Paris", "Lutetia"]
    assert exact_match("Lutetia", golds) == exact_match("paris.", golds) == 1.0
    assert exact_match("Lyon", golds) == 0.0
    assert trajectory_reward("Lutetia", golds) == trajectory_reward("Paris", golds) == 1.0
    assert contains_answer("The city was called Lutetia by the Romans.", golds)
    assert not contains_answer("anything at all", ["the"]) and not contains_answer("anything", ["!", "An"])
    assert contains_answer("Lutetia, the Roman city", ["the", "Lutetia"])  # an empty gold beside a real one
