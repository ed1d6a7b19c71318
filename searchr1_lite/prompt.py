"""The tag protocol: the paper's instruction, chat templating, and parsing a generated turn into an action.

The instruction is the authors' published template, word for word (including "as many times as your want"), so
their released checkpoints see the text they were trained on. The question gets a trailing `?` when it has none,
and the tokenizer's chat template is applied whenever the tokenizer has one, for base and instruct models alike, as
the authors do. What comes back from the search engine and what an invalid action gets are also their strings.

Parsing is stricter than the authors' regex (which takes the first `<search>…</search>` or `<answer>…</answer>`
anywhere): an action inside `<think>`, nested or unbalanced tags, an empty query, or a turn that holds both a
search and an answer is an *invalid action* here, with the reason recorded. It runs in linear time over one pass
of the tags, so a megabyte of malformed output costs milliseconds, never a regex blow-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

from .corpus import Passage, format_docs

SEARCH_R1_INSTRUCTION = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get "
    "new information. After reasoning, if you find you lack some knowledge, you can call a search engine by "
    "<search> query </search> and it will return the top searched results between <information> and "
    "</information>. You can search as many times as your want. If you find no further external knowledge needed, "
    "you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. "
    "For example, <answer> Beijing </answer>. Question: {question}\n"
)
# Deviation from the paper, for small models only: the same instruction with one worked example before the question.
# SmolLM2-135M produced 0/32 valid actions from the bare instruction and 7/32 searches with this.
# Its `<answer>` sits in the prompt, which is never parsed for the reward.
WORKED_EXAMPLE = (
    "Example. Question: Where was the painter of the Mona Lisa born?\n"
    "<think> I need the painter of the Mona Lisa. </think>\n<search> Mona Lisa painter </search>\n"
    '<information>Doc 1(Title: "Mona Lisa") The Mona Lisa is a portrait by Leonardo da Vinci.</information>\n'
    "<think> Now I need where Leonardo da Vinci was born. </think>\n<search> Leonardo da Vinci birthplace </search>\n"
    '<information>Doc 1(Title: "Leonardo da Vinci") Leonardo da Vinci was born in Vinci, Italy.</information>\n'
    "<think> He was born in Vinci. </think>\n<answer> Vinci </answer>\n"
)
SEARCH_R1_WITH_EXAMPLE = SEARCH_R1_INSTRUCTION.replace(
    "Question: {question}\n", WORKED_EXAMPLE + "Question: {question}\n"
)

INVALID_ACTION_FEEDBACK = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and </search>. "
    "If I want to give the final answer, I should put the answer between <answer> and </answer>. Let me try again.\n"
)
STOP_STRINGS = ("</search>", "</answer>")

_TAG = re.compile(r"<(/?)(search|answer|think|information)>")


def normalize_question(question: str) -> str:
    question = question.strip()
    return question if question.endswith("?") else question + "?"


def build_prompt(question: str, tokenizer=None, template: str = SEARCH_R1_INSTRUCTION, chat: bool = True,
                 response_prefix: str = "", context: str | None = None) -> str:
    """The text the policy starts from: instruction + question, in the tokenizer's chat template if it has one,
    then `response_prefix`: the start of the answer written for the model (e.g. "<think>", as R1-Zero-style
    recipes do; part of the prompt, so never trained on). The paper uses none. `template`: a text with {question}
    or a template's name (`search_template`); a RAG template has a {context} slot too, for `context`."""
    slots = {} if context is None else {"context": context}
    content = search_template(template).format(question=normalize_question(question), **slots)
    if chat and tokenizer is not None and getattr(tokenizer, "chat_template", None):
        content = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
    return content + response_prefix


def information_block(passages: Sequence[Passage]) -> str:
    """What is inserted after a search, exactly as the authors format it."""
    return f"\n\n<information>{format_docs(passages).strip()}</information>\n\n"


def with_examples(template: str, examples: str) -> str:
    """`template` with worked `examples` (plain text, braces escaped here) just before its question, or before its
    passages where a RAG template puts them first."""
    slot = min((s for s in ("Context: {context}", "Question: {question}", "{question}") if s in template),
               key=template.index)
    return template.replace(slot, "\n\n" + examples.replace("{", "{{").replace("}", "}}") + slot)


# The search templates by name. The demo's synthetic-world templates live with the demo (world_prompts.py).
TEMPLATES = {"paper": SEARCH_R1_INSTRUCTION, "worked-example": SEARCH_R1_WITH_EXAMPLE}


def _all_templates() -> dict[str, str]:
    from .world_prompts import WORLD_TEMPLATES  # the demo's: imported here, so paper code never imports the demo

    return {**TEMPLATES, **WORLD_TEMPLATES}


def template_names() -> list[str]:
    return list(_all_templates())


def search_template(name_or_text: str) -> str:
    """The template text: a name (`paper`, `worked-example`, `world-examples`, ...) or a text with {question}."""
    if "{question}" in name_or_text:
        return name_or_text
    templates = _all_templates()
    if name_or_text not in templates:
        raise ValueError(f"template must be one of {', '.join(templates)} (or a text with {{question}}), "
                         f"not {name_or_text!r}")
    return templates[name_or_text]


@dataclass(frozen=True)
class Action:
    """One parsed turn. `kind` is search, answer or invalid; `reason` says why an invalid one is invalid."""

    kind: Literal["search", "answer", "invalid"]
    content: str = ""
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.kind != "invalid"


def parse_action(text: str) -> Action:
    """The first complete `<search>…</search>` or `<answer>…</answer>` of a generated turn, or an invalid action."""
    in_think = False
    opened: tuple[str, int] | None = None  # (tag name, end of the opening tag)
    for m in _TAG.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        if name == "think":
            if opened is not None:
                return Action("invalid", reason=f"<{'/' if closing else ''}think> inside <{opened[0]}>")
            in_think = not closing
            continue
        if name == "information":
            if opened is not None:
                return Action("invalid", reason=f"<information> inside <{opened[0]}>")
            continue  # the model imitating results outside an action: harmless text
        if not closing:
            if opened is not None:
                return Action("invalid", reason=f"nested tags: <{name}> inside <{opened[0]}>")
            if in_think:
                return Action("invalid", reason=f"<{name}> inside <think>")
            opened = (name, m.end())
            continue
        if opened is None:
            return Action("invalid", reason=f"</{name}> without <{name}>")
        if opened[0] != name:
            return Action("invalid", reason=f"nested tags: </{name}> closes <{opened[0]}>")
        content = text[opened[1] : m.start()].strip()
        if not content:
            return Action("invalid", reason=f"empty {'query' if name == 'search' else 'answer'}")
        other = "answer" if name == "search" else "search"
        if f"<{other}>" in text[m.end() :]:
            return Action("invalid", reason="both <search> and <answer> in one turn")
        return Action(name, content)  # type: ignore[arg-type]
    if opened is not None:
        return Action("invalid", reason=f"unclosed <{opened[0]}>")
    return Action("invalid", reason="no <search> or <answer>")

