"""Evaluation as in the paper's table: Direct, RAG and Search-R1, exact match per dataset, beside the paper's numbers.

- direct: the question alone; the model reasons and answers in one turn (the authors' no-search template).
- rag: the top-k passages for the question are put in the prompt once; one turn (the authors' RAG prompt).
- search: the policy with the search loop (lesson 02), up to `max_turns` searches.
All three decode greedily and read the answer from the generated `<answer>…</answer>` only.

The paper's numbers come with the package (`reference/search_r1_paper_em.csv`): e5-base-v2 over 2018 Wikipedia, top 3,
full test sets. A table made here says its own setting (model, retriever, corpus, subset size) beside them.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Sequence

import pandas as pd

from .corpus import format_docs
from .data import QAExample
from .prompt import SEARCH_R1_INSTRUCTION
from .reward import trajectory_reward
from .rollout import RolloutConfig, rollout

DIRECT_TEMPLATE = (
    "Answer the given question. You should first have a reasoning process in mind and then provides the answer. "
    "Show your reasoning in <think> </think> tags and return the final answer in <answer> </answer> tags, "
    "for example <answer> Beijing </answer>. Question: {question}\n"
)
# The authors' RAG prompt (scripts/data_process/nq_rag.py): the question, then the passages formatted as a search
# inserts them (`format_docs`, stripped: their " \n" follows the last passage's own line end)
RAG_TEMPLATE = (
    "Answer the given question with some potentially useful context. You should analyze the question carefully, "
    "evaluate the given context (which may or may not be useful), and then generate an accurate and well-reasoned "
    "response. You should first have a reasoning process in mind and then provides the answer. Show your reasoning "
    "in <think> </think> tags and return the final answer in <answer> </answer> tags, for example <answer> Beijing "
    "</answer>. Question: {question} Context: {context}\n \n"
)
METHODS = ("direct", "rag", "search")


def method_templates(style: str) -> dict[str, str]:
    """The direct, rag and search templates of a style: `paper`, or `world-examples` (the demo's, world_prompts.py)."""
    if style == "paper":
        return {"direct": DIRECT_TEMPLATE, "rag": RAG_TEMPLATE, "search": SEARCH_R1_INSTRUCTION}
    if style == "world-examples":
        from .world_prompts import WORLD_METHOD_TEMPLATES

        return WORLD_METHOD_TEMPLATES
    raise ValueError(f"style must be paper or world-examples, not {style!r}")


def paper_table(model: str | None = None) -> pd.DataFrame:
    """The paper's EM table (rows: model, method; columns: the seven datasets and avg)."""
    with resources.files("searchr1_lite").joinpath("reference/search_r1_paper_em.csv").open() as f:
        table = pd.read_csv(f)
    return table[table["model"] == model] if model else table


def evaluate_method(model, tokenizer, method: str, datasets: dict[str, Sequence[QAExample]], retriever=None,
                    config: RolloutConfig | None = None, topk: int | None = None, style: str | None = None,
                    progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """EM per dataset (and the average over datasets) for one method; also the trajectories, by dataset.
    `style` picks the direct and RAG templates (`paper`, the default, or `world-examples` for the demo); search uses
    the template of `config`. RAG retrieves `topk` passages, by default as many as a search of `config` does."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if method in ("rag", "search") and retriever is None:
        raise ValueError(f"method {method!r} needs a retriever")
    base = dataclasses.replace(config or RolloutConfig(), temperature=0.0)
    topk = topk or base.topk
    rows, trajectories = {}, {}
    templates = method_templates(style or "paper")
    for name, examples in datasets.items():
        questions, contexts = [e.question for e in examples], None
        if method == "direct":
            cfg = dataclasses.replace(base, max_turns=0, template=templates["direct"])
        elif method == "rag":
            contexts = [format_docs(h).strip() for h in retriever.search(questions, topk)]
            cfg = dataclasses.replace(base, max_turns=0, template=templates["rag"])
        else:
            cfg = base  # the search prompt is the config's (a trained run's own template)
        # a progress bar with an ETA: an evaluation takes minutes on a CPU
        result = rollout(model, tokenizer, questions, retriever if method == "search" else None, cfg,
                         progress=progress, contexts=contexts)
        ems = [trajectory_reward(t.answer, e.answers) for t, e in zip(result.trajectories, examples)]
        rows[name] = sum(ems) / max(1, len(ems))
        trajectories[name] = result.trajectories
    table = pd.DataFrame([rows], index=[method])
    table["avg"] = table.mean(axis=1)
    return table, trajectories


def evaluate(model, tokenizer, datasets: dict[str, Sequence[QAExample]], retriever=None,
             methods: Sequence[str] = METHODS, config: RolloutConfig | None = None, topk: int | None = None,
             style: str | None = None, progress: bool = False) -> pd.DataFrame:
    """One row per method, one column per dataset plus `avg` (EM, 0-1)."""
    return pd.concat([evaluate_method(model, tokenizer, m, datasets, retriever, config, topk, style, progress)[0]
                      for m in methods])


def beside_paper(ours: pd.DataFrame, paper_model: str, setting: str) -> pd.DataFrame:
    """Our rows and the paper's rows for `paper_model` on the datasets both have, with the setting named."""
    paper = paper_table(paper_model).set_index("method").drop(columns="model")
    paper = paper.rename(columns={"2wiki": "2wikimultihopqa"})
    shared = [c for c in ours.columns if c in paper.columns and c != "avg"]
    left = ours[shared].copy()
    left.index = [f"{m} ({setting})" for m in ours.index]
    right = paper[shared].copy()
    right.index = [f"{m} (paper, {paper_model})" for m in paper.index]
    both = pd.concat([left, right])
    both["avg"] = both.mean(axis=1)
    return both


def paired_sign_flip_p(before: Sequence[float], after: Sequence[float], exact_up_to: int = 20,
                       samples: int = 100_000, seed: int = 0) -> float:
    """Two-sided p-value that `after` and `before`, scored on the same questions, differ only by chance: the share of
    the 2^m ways of flipping the signs of the m non-zero per-question differences whose total is at least as far
    from 0 as the observed one. Exact up to `exact_up_to` differences, else `samples` seeded random flips.
    With EM (0 or 1 a question) it is the exact sign test; 1.0 when nothing differs. Few questions need a large
    gain: with 16, a gain in 5 and a loss in none gives p = 2/32 = 0.0625."""
    import numpy as np

    if len(before) != len(after):
        raise ValueError(f"before and after score the same questions: {len(before)} vs {len(after)} scores")
    d = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    d = np.abs(d[d != 0])  # [m]
    if d.size == 0:
        return 1.0
    observed = abs(float((np.asarray(after, dtype=float) - np.asarray(before, dtype=float)).sum()))
    if d.size <= exact_up_to:
        signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)  # [2^m, m] all sign vectors
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(samples, d.size))
    totals = np.abs(signs @ d)  # [rows]
    return float((totals >= observed - 1e-9).mean())
