"""Evaluation tables on a scripted model; dataset loaders on local FlashRAG-format files (and a mocked hub)."""

import json

import pytest

from searchr1_lite.data import QAExample, load_eval_set, read_qa_jsonl
from searchr1_lite.evaluate import beside_paper, evaluate, evaluate_method, paired_sign_flip_p, paper_table
from searchr1_lite.models import qwen25_tokenizer
from searchr1_lite.rollout import RolloutConfig
from searchr1_lite.scripted import ScriptedLM


class OneRetriever:
    def __init__(self):
        self.calls = []

    def search(self, queries, k=3):
        from searchr1_lite.corpus import Passage

        self.calls.append((list(queries), k))
        return [[Passage("1", '"Paris"\nParis is the capital of France.')] for _ in queries]


def test_em_table_shape_and_values_on_a_scripted_model():
    tok = qwen25_tokenizer()
    # rows: q1 answers right, q2 answers wrong, q3 searches then answers right (in the search method)
    scripts = [["<answer> Paris </answer>"], ["<answer> Lyon </answer>"],
               ["<search> capital of Italy </search>", "<answer> Rome </answer>"]]
    model = ScriptedLM(tok, scripts)
    data = {"toy": [QAExample("1", "Capital of France?", ["Paris"]), QAExample("2", "Capital of Spain?", ["Madrid"]),
                    QAExample("3", "Capital of Italy?", ["Rome"])],
            "one": [QAExample("4", "Capital of France?", ["paris"])]}
    retriever = OneRetriever()
    table = evaluate(model, tok, data, retriever)
    assert list(table.index) == ["direct", "rag", "search"] and list(table.columns) == ["toy", "one", "avg"]
    # direct / rag have one turn: row 3's search is not answered -> no answer; search answers it after one search
    assert table.loc["direct", "toy"] == pytest.approx(1 / 3) and table.loc["search", "toy"] == pytest.approx(2 / 3)
    assert table.loc["direct", "one"] == 1.0 and table.loc["search", "avg"] == pytest.approx((2 / 3 + 1) / 2)
    assert (["capital of Italy"], 3) in retriever.calls  # the search method searched
    assert any(q.startswith("Capital of France") for q in retriever.calls[0][0])  # rag retrieved for the questions
    retriever.calls.clear()  # RAG retrieves as many passages as a search of the config does, unless told otherwise
    evaluate(ScriptedLM(tok, scripts), tok, {"toy": data["toy"]}, retriever, ["rag", "search"], RolloutConfig(topk=2))
    assert {k for _, k in retriever.calls} == {2}
    evaluate(ScriptedLM(tok, scripts), tok, {"toy": data["toy"]}, retriever, ["rag"], RolloutConfig(topk=2), topk=4)
    assert retriever.calls[-1][1] == 4


def test_paper_table_and_side_by_side():
    paper = paper_table("qwen2.5-3b")
    assert paper.set_index("method").loc["rag", "nq"] == 0.348 and len(paper) == 11
    import pandas as pd

    ours = pd.DataFrame([{"nq": 0.1, "hotpotqa": 0.2, "fanoutqa": 0.5}], index=["rag"])
    both = beside_paper(ours, "qwen2.5-3b", "SmolLM2-135M, BM25 over wiki-vital, 50 questions")
    assert list(both.columns) == ["nq", "hotpotqa", "avg"]
    assert both.loc["rag (SmolLM2-135M, BM25 over wiki-vital, 50 questions)", "avg"] == pytest.approx(0.15)
    assert both.loc["rag (paper, qwen2.5-3b)", "hotpotqa"] == 0.255


def test_local_flashrag_files_and_subsampling(tmp_path):
    path = tmp_path / "nq_test.jsonl"
    rows = [{"id": f"test_{i}", "question": f"question {i}", "golden_answers": [f"a{i}", f"b{i}"]} for i in range(50)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    full = load_eval_set(str(path))
    assert len(full) == 50 and full[3].answers == ["a3", "b3"] and full[3].id == "test_3"
    sub = load_eval_set(str(path), limit=10, seed=1)
    assert (len(sub) == 10 and sub == load_eval_set(str(path), limit=10, seed=1)
            and sub != load_eval_set(str(path), limit=10, seed=2))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "golden_answers": []}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: 'golden_answers' must be a non-empty list"):
        read_qa_jsonl(bad)


def test_hub_sets_use_flashrag_names_and_splits(monkeypatch):
    import datasets

    asked = []

    def fake_load(repo, name, split):
        asked.append((repo, name, split))
        return [{"id": "1", "question": "q?", "golden_answers": ["a"]}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    assert load_eval_set("hotpotqa")[0].answers == ["a"] and load_eval_set("bamboogle")
    assert asked == [("RUC-NLPIR/FlashRAG_datasets", "hotpotqa", "dev"),
                     ("RUC-NLPIR/FlashRAG_datasets", "bamboogle", "test")]


def test_question_sets_from_the_hub_offline_name_the_offline_ones_and_a_typo_names_the_test_sets(tmp_path,
                                                                                                   monkeypatch):
    """The hub switched off (never a real download from a test): the authors' training set and a FlashRAG test set
    say what to use offline, not a bare connection error; a misspelt test set lists the test sets."""
    import datasets
    import huggingface_hub.constants

    from searchr1_lite.data import load_questions
    from searchr1_lite.offline import HubUnavailable
    from searchr1_lite.world import load_world

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailable, match="PeterJinGo/nq_hotpotqa_train.*unreachable.*Offline: fanoutqa"):
        load_questions("nq_hotpotqa_train")
    with pytest.raises(HubUnavailable, match="test set 'nq' comes from the hub .*Offline: --datasets fanoutqa"):
        load_eval_set("nq", 5)
    with pytest.raises(ValueError, match="unknown test set 'bamboogel': use nq, triviaqa, .*bamboogle \\(hub\\)"):
        load_eval_set("bamboogel")
    world = load_world("world:seed=2,people=30")
    assert load_questions("world:seed=2,people=30", split="dev") == world.splits["dev"]


def test_evaluation_decodes_greedily_whatever_the_config_samples_at():
    """A trained run's config samples at temperature 1 (its rollouts); evaluating with it must still decode greedily,
    so a table does not depend on the seed. On tiny-qwen2 (random weights: a sampled token is almost never the
    argmax), two seeds at temperature 1 give the same trajectories, those of an explicitly greedy config."""
    from searchr1_lite.models import load_model

    model, tok = load_model("tiny-qwen2", device="cpu")
    data = {"toy": [QAExample("1", "Capital of France?", ["Paris"]),
                    QAExample("2", "Who wrote Hamlet?", ["Shakespeare"])]}
    configs = [RolloutConfig(temperature=t, top_p=1.0, seed=seed, max_new_tokens=6)
               for t, seed in ((1.0, 0), (1.0, 1), (0.0, 2))]
    runs = [evaluate_method(model, tok, "direct", data, config=c)[1]["toy"] for c in configs]
    ids = [[t.ids for t in run] for run in runs]
    assert ids[0] == ids[1] == ids[2] and all(sum(t.gen_mask) == 6 for t in runs[0])


def _sign_flip_oracle(before, after):
    """The two-sided paired sign-flip p-value by listing every sign vector with itertools: the share of the 2^m sign
    flips of the m non-zero differences whose total is at least as far from 0 as the observed total."""
    import itertools

    d = [a - b for a, b in zip(after, before) if a != b]
    observed = abs(sum(d))
    flips = list(itertools.product((1, -1), repeat=len(d)))
    return sum(abs(sum(s * x for s, x in zip(signs, d))) >= observed - 1e-9 for signs in flips) / len(flips)


@pytest.mark.parametrize("before, after, by_hand", [
    ([0] * 16, [1] * 5 + [0] * 11, 2 / 32),  # 5 gains, no loss: all + or all - of 5 signs
    ([0, 1], [1, 0], 1.0),  # a gain and a loss: total 0, every flip is as far
    ([0] * 12, [1] * 12, 2 / 4096),
    ([0, 0, 0, 1, 1], [1, 1, 1, 0, 1], 10 / 16),  # 3 gains, 1 loss: |total| >= 2 unless two of each: 1 - 6/16
    ([1, 1, 0], [0, 1, 0], 1.0),  # a loss only: both flips of one sign are as far
    ([0.2, 0.5, 0.6, 1.0], [0.6, 0.4, 0.8, 1.0], 4 / 8),  # F1: +0.4, -0.1, +0.2, total 0.5: only the flips
    # with totals +-0.5 (as observed) and +-0.7 (every sign alike) are as far; +-0.1 and +-0.3 are not
    ([1, 0, 1], [1, 0, 1], 1.0),  # nothing differs
])
def test_paired_sign_flip_p_by_hand_and_by_listing_every_flip(before, after, by_hand):
    """Exact p-values pinned by hand and by an independent oracle (itertools, not the bit tricks of the code)."""
    assert _sign_flip_oracle(before, after) == pytest.approx(by_hand, abs=1e-12)
    assert paired_sign_flip_p(before, after) == pytest.approx(by_hand, abs=1e-12)
    assert paired_sign_flip_p(after, before) == pytest.approx(by_hand, abs=1e-12)  # two-sided: symmetric


def test_paired_sign_flip_p_sampled_past_the_exact_limit_agrees_with_the_binomial():
    """Past `exact_up_to` differences the flips are sampled; with EM the exact answer is the two-sided binomial sign
    test, P(|2X - m| >= |gains - losses|) for X ~ Bin(m, 1/2): 16 gains and 6 losses of 22."""
    from math import comb

    before, after = [0] * 16 + [1] * 6 + [1] * 3, [1] * 16 + [0] * 6 + [1] * 3
    m, observed = 22, 10
    exact = sum(comb(m, x) for x in range(m + 1) if abs(2 * x - m) >= observed) / 2**m  # 0.0525
    assert paired_sign_flip_p(before, after) == pytest.approx(exact, abs=0.005)
    assert paired_sign_flip_p(before, after, exact_up_to=22) == pytest.approx(exact, abs=1e-12)


# The authors' RAG prompt, scripts/data_process/nq_rag.py (template_type "base"), written out here as the oracle:
# make_prefix's text, then f"Question: {question} Context: {context} \n" with format_reference's "Doc i(Title: ...)
# text\n" lines, the question stripped and ending in "?"
AUTHORS_RAG = (
    "Answer the given question with some potentially useful context. You should analyze the question carefully, "
    "evaluate the given context (which may or may not be useful), and then generate an accurate and well-reasoned "
    "response. You should first have a reasoning process in mind and then provides the answer. Show your reasoning "
    "in <think> </think> tags and return the final answer in <answer> </answer> tags, for example <answer> Beijing "
    "</answer>. Question: {question} Context: {context} \n")


def test_the_rag_prompt_is_the_authors_and_the_demos_is_as_it_was():
    """The prompt the RAG method's rollout starts from (Trajectory.ids), decoded: the authors' for the paper style;
    the demo's own (passages, then the question, after its worked examples) for the world style."""
    from searchr1_lite.world_prompts import WORLD_EXAMPLE_FACTS

    tok = qwen25_tokenizer()
    data = {"toy": [QAExample("1", "  capital of France ", ["Paris"])]}
    paris = "Doc 1(Title: \"Paris\") Paris is the capital of France.\n"

    def rag_prompt(style):
        _, runs = evaluate_method(ScriptedLM(tok, [["<answer> Paris </answer>"]]), tok, "rag", data, OneRetriever(),
                                  RolloutConfig(chat=False), style=style)
        t = runs["toy"][0]
        return tok.decode(t.ids[:t.prompt_len])

    assert rag_prompt("paper") == AUTHORS_RAG.format(question="capital of France?", context=paris)
    world = rag_prompt("world-examples")
    assert world.endswith(f"</answer>\n\nContext: {paris}Question: capital of France?\n")
    assert world.index(WORLD_EXAMPLE_FACTS[-1][0]) < world.index("Context: Doc 1(Title: \"Paris\")")
    assert "You should first have a reasoning process" not in world  # the demo's wording, as its reports measured
