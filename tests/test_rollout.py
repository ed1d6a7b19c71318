"""The rollout engine: turn structure, retriever calls, masks and log-probs, with scripted and real models."""

import pytest
import torch

from searchr1_lite.corpus import Passage
from searchr1_lite.models import load_model, qwen25_tokenizer
from searchr1_lite.prompt import INVALID_ACTION_FEEDBACK, build_prompt, information_block
from searchr1_lite.reward import trajectory_reward
from searchr1_lite.rollout import RolloutConfig, rollout
from searchr1_lite.scripted import ScriptedLM


class RecordingRetriever:
    """A retriever over a fixed table of passages that records every batched call."""

    def __init__(self):
        self.calls = []

    def search(self, queries, k=3):
        self.calls.append((list(queries), k))
        return [[Passage(f"{q}-{j}", f'"Doc about {q}"\nFact {j} about {q}.') for j in range(k)] for q in queries]


TWO_HOP = [
    "<think>I need the painter first.</think>\n<search> painter of the Mona Lisa </search>",
    "<think>Leonardo. Now his birthplace.</think>\n<search> Leonardo da Vinci birthplace </search>",
    "<think>Vinci.</think>\n<answer> Vinci </answer>",
]


@pytest.fixture(scope="module")
def qwen_tok():
    return qwen25_tokenizer()


def test_scripted_two_searches_then_answer_end_to_end(qwen_tok):
    retriever = RecordingRetriever()
    model = ScriptedLM(qwen_tok, [TWO_HOP])
    res = rollout(model, qwen_tok, ["Where was the painter of the Mona Lisa born"] * 2, retriever,
                  RolloutConfig(seed=3))
    # one batched search call per turn, both rows in it
    assert retriever.calls == [(["painter of the Mona Lisa"] * 2, 3), (["Leonardo da Vinci birthplace"] * 2, 3)]
    for t in res.trajectories:
        assert [turn.action.kind for turn in t.turns] == ["search", "search", "answer"]
        assert t.queries == ["painter of the Mona Lisa", "Leonardo da Vinci birthplace"] and t.answer == "Vinci"
        assert trajectory_reward(t.answer, ["Vinci"]) == 1.0 and t.well_formed
        generated = qwen_tok.decode(t.sampled_ids())
        assert generated == "".join(TWO_HOP)  # the policy's own text, exactly, and nothing else
        full = qwen_tok.decode(t.ids)
        assert full.startswith(build_prompt(t.question, qwen_tok))
        assert full.count("<information>Doc 1(Title: \"Doc about painter of the Mona Lisa\")") == 1
        assert all(turn.inserted > 0 for turn in t.turns[:2]) and t.turns[2].inserted == 0


def test_invalid_action_gets_the_papers_feedback_and_the_turn_counts(qwen_tok):
    script = ["I think the answer is Paris.", "<search></search>", "<answer> Paris </answer>"]
    res = rollout(ScriptedLM(qwen_tok, [script]), qwen_tok, ["Capital of France?"], RecordingRetriever(),
                  RolloutConfig(max_turns=4))
    t = res.trajectories[0]
    assert [(x.action.kind, x.action.reason) for x in t.turns] == [
        ("invalid", "no <search> or <answer>"), ("invalid", "empty query"), ("answer", "")]
    assert qwen_tok.decode(t.ids).count(INVALID_ACTION_FEEDBACK) == 2 and t.invalid_actions == 2
    assert t.answer == "Paris" and not t.well_formed


def test_turn_limit_then_one_last_turn_without_search(qwen_tok):
    retriever = RecordingRetriever()
    res = rollout(ScriptedLM(qwen_tok, [["<search> again </search>"]]), qwen_tok, ["q"], retriever,
                  RolloutConfig(max_turns=2))
    t = res.trajectories[0]
    assert len(t.turns) == 3 and len(retriever.calls) == 2 and t.answer is None
    assert trajectory_reward(t.answer, ["x"]) == 0.0
    # the last turn may not search, but it may answer: that answer is the trajectory's (and earns the reward)
    script = ["<search> first </search>", "<search> second </search>", "<answer> Vinci </answer>"]
    t = rollout(ScriptedLM(qwen_tok, [script]), qwen_tok, ["q"], RecordingRetriever(),
                RolloutConfig(max_turns=2)).trajectories[0]
    assert [x.action.kind for x in t.turns] == ["search", "search", "answer"] and t.queries == ["first", "second"]
    assert t.answer == "Vinci" and t.well_formed and trajectory_reward(t.answer, ["Vinci"]) == 1.0


def test_caps_on_inserted_and_total_tokens(qwen_tok):
    class LongRetriever(RecordingRetriever):
        def search(self, queries, k=3):
            return [[Passage("1", '"Long"\n' + "word " * 2000)] for _ in queries]

    res = rollout(ScriptedLM(qwen_tok, [TWO_HOP]), qwen_tok, ["q"], LongRetriever(),
                  RolloutConfig(max_obs_tokens=50, max_total_tokens=10_000))
    t = res.trajectories[0]
    assert t.turns[0].inserted == 50 and qwen_tok.decode(t.ids).count("</information>\n\n") == 2
    short = rollout(ScriptedLM(qwen_tok, [TWO_HOP]), qwen_tok, ["q"], LongRetriever(),
                    RolloutConfig(max_obs_tokens=500, max_total_tokens=300)).trajectories[0]
    assert short.truncated and short.answer is None and len(short.ids) <= 300


def test_a_turn_that_runs_out_of_tokens_is_marked_cut(qwen_tok):
    """A turn cut at max_new_tokens is marked (its <search> is lost); one whose stop string is the last token is not."""
    search = "<think>Find Trosza Bridir.</think>\n<search> Trosza Bridir </search>"
    exact = len(qwen_tok(search, add_special_tokens=False)["input_ids"])
    script = [search, "<answer> Drothen </answer>"]
    whole = rollout(ScriptedLM(qwen_tok, [script]), qwen_tok, ["q"], RecordingRetriever(),
                    RolloutConfig(max_new_tokens=exact)).trajectories[0]
    assert [(x.action.kind, x.cut) for x in whole.turns] == [("search", False), ("answer", False)]
    assert whole.answer == "Drothen"
    short = rollout(ScriptedLM(qwen_tok, [script]), qwen_tok, ["q"], RecordingRetriever(),
                    RolloutConfig(max_new_tokens=exact - 1, max_turns=1)).trajectories[0]
    assert short.turns[0].cut and short.turns[0].generated == exact - 1 and short.turns[0].action.kind == "invalid"
    assert short.queries == [] and not any(x.cut for x in short.turns[1:])


def test_eos_ends_the_turn_and_is_kept_once(qwen_tok):
    """A sampled EOS ends the turn at once, like a stop tag (the scripted model writes EOS after a text without a
    tag): the turn holds the text's tokens and that one EOS, well before max_new_tokens, and is not marked cut."""
    text = "I think the answer is Paris."
    n = len(qwen_tok(text, add_special_tokens=False).input_ids)
    t = rollout(ScriptedLM(qwen_tok, [[text, "<answer> Paris </answer>"]]), qwen_tok, ["Capital of France?"],
                RecordingRetriever(), RolloutConfig(max_new_tokens=40, max_turns=1)).trajectories[0]
    first = t.ids[t.prompt_len : t.prompt_len + t.turns[0].generated]
    assert t.turns[0].generated == n + 1 and not t.turns[0].cut
    assert first[-1] == qwen_tok.eos_token_id and first.count(qwen_tok.eos_token_id) == 1
    assert t.turns[0].text == text and t.turns[0].action.kind == "invalid" and t.answer == "Paris"


def test_a_trajectory_ends_exactly_at_max_total_tokens_marked_truncated(qwen_tok):
    """max_total_tokens counts the prompt and every token after it: a turn still writing when the trajectory reaches
    it stops there, not one token later, and the trajectory ends truncated (no answer, no further turn)."""
    prompt_len = len(qwen_tok(build_prompt("q", qwen_tok), add_special_tokens=False).input_ids)
    script = ["I think the answer is Paris, the capital and largest city of France."]
    cfg = RolloutConfig(max_new_tokens=40, max_total_tokens=prompt_len + 5)
    t = rollout(ScriptedLM(qwen_tok, [script]), qwen_tok, ["q"], RecordingRetriever(), cfg).trajectories[0]
    assert t.prompt_len == prompt_len and len(t.ids) == prompt_len + 5 == cfg.max_total_tokens
    assert t.truncated and len(t.turns) == 1 and t.turns[0].generated == 5 and t.answer is None


def test_identical_prompts_share_a_prefix_that_leaves_each_row_a_token_to_feed(bm25_retriever):
    """Every GRPO group repeats one question, so its rows' prompts are identical: the shared prefix must stop one
    token short of them, since the first token's logits come from feeding a row's own last prompt token. The
    recorded log-probs then equal a forward over the exact ids with no prefix sharing."""
    from searchr1_lite.rollout import _common_prefix

    assert _common_prefix([[1, 2, 3], [1, 2, 3]]) == 2 and _common_prefix([[1, 2, 3], [1, 2, 4]]) == 2
    assert _common_prefix([[1, 2, 3], [1, 5, 3]]) == 1 and _common_prefix([[7], [7]]) == 0
    model, tok = load_model("tiny-qwen2", device="cpu")
    cfg = RolloutConfig(max_turns=1, max_new_tokens=8, temperature=1.0, seed=0)
    res = rollout(model, tok, ["Who painted the Mona Lisa?"] * 3, bm25_retriever, cfg)
    assert len({tuple(t.ids[: t.prompt_len]) for t in res.trajectories}) == 1
    _check_masks(res, tok, cfg.temperature, model)


def _check_masks(res, tokenizer, temperature, model=None):
    """input_ids[gen_mask==1] are exactly the sampled tokens; everything inserted is gen_mask==0."""
    for t in res.trajectories:
        assert len(t.ids) == len(t.gen_mask) == len(t.logprobs)
        assert all(m == 0 for m in t.gen_mask[: t.prompt_len])
        pos = t.prompt_len
        for turn in t.turns:  # the turns tile the sequence: sampled run, then inserted run
            assert all(t.gen_mask[pos : pos + turn.generated]) and turn.generated > 0
            pos += turn.generated
            assert not any(t.gen_mask[pos : pos + turn.inserted])
            inserted = tokenizer.decode(t.ids[pos : pos + turn.inserted])
            assert inserted == "" or inserted.startswith("\n\n<information>") or inserted == INVALID_ACTION_FEEDBACK
            pos += turn.inserted
        assert pos == len(t.ids)
    if model is None:
        return
    tensors = res.tensors(tokenizer.pad_token_id)
    with torch.no_grad():  # the recorded log-probs are the model's, on the exact ids: recompute in one forward
        logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]).logits.float()
    lp = torch.log_softmax(logits[:, :-1] / temperature, -1).gather(-1, tensors["input_ids"][:, 1:, None])[..., 0]
    m = tensors["gen_mask"][:, 1:].bool()
    torch.testing.assert_close(lp[m], tensors["logprobs"][:, 1:][m], atol=2e-4, rtol=0)
    assert (tensors["input_ids"][tensors["attention_mask"] == 0] == tokenizer.pad_token_id).all()


def test_masks_and_logprobs_with_the_real_qwen25_tokenizer(bm25_retriever):
    model, tok = load_model("tiny-qwen2", device="cpu")
    cfg = RolloutConfig(max_turns=2, max_new_tokens=24, temperature=1.0, seed=0)
    res = rollout(model, tok, ["Who painted the Mona Lisa?", "Capital of France", "q"], bm25_retriever, cfg)
    _check_masks(res, tok, cfg.temperature, model)
    again = rollout(model, tok, ["Who painted the Mona Lisa?", "Capital of France", "q"], bm25_retriever, cfg)
    assert [t.ids for t in again.trajectories] == [t.ids for t in res.trajectories]  # seeded


def test_rows_that_are_done_leave_the_batch(qwen_tok):
    """Rows that answered leave the batch between turns: the next turn runs only the others, and every trajectory
    is the one it would be alone."""
    scripts = [["<answer> A </answer>"], TWO_HOP, TWO_HOP[1:]]  # done after turn 1, 3 and 2
    model = ScriptedLM(qwen_tok, scripts)
    widths = []
    model.register_forward_pre_hook(lambda m, args, kw: widths.append(kw["input_ids"].shape[0]), with_kwargs=True)
    questions = ["first question", "second", "the third question"]
    res = rollout(model, qwen_tok, questions, RecordingRetriever(), RolloutConfig(max_turns=3))
    batch = widths[widths.index(3):]  # (before it: the shared prompt prefix, run once at batch size 1)
    assert batch[-1] == 1 and 2 in batch and sorted(batch, reverse=True) == batch
    for i, t in enumerate(res.trajectories):
        alone = rollout(ScriptedLM(qwen_tok, [scripts[i]]), qwen_tok, [questions[i]], RecordingRetriever(),
                        RolloutConfig(max_turns=3)).trajectories[0]
        assert t.ids == alone.ids and t.gen_mask == alone.gen_mask and t.answer == alone.answer
    assert [t.answer for t in res.trajectories] == ["A", "Vinci", "Vinci"]


def test_rows_leaving_keep_the_real_kv_cache_right(bm25_retriever):
    """With a real KV cache: a row truncated in turn 1 leaves the batch; the others' recorded log-probs still equal
    a fresh forward over their exact ids (a wrong cache row after the cut would break this)."""
    model, tok = load_model("tiny-qwen2", device="cpu")
    questions = ["q", "Capital of France " + "and more words " * 20, "Who painted the Mona Lisa?"]
    longest = max(len(tok(build_prompt(q, tok)).input_ids) for q in questions)
    cfg = RolloutConfig(max_turns=2, max_new_tokens=16, temperature=1.0, seed=3, max_total_tokens=longest + 16)
    widths = []
    model.register_forward_pre_hook(lambda m, args, kw: widths.append(kw["input_ids"].shape[0]), with_kwargs=True)
    res = rollout(model, tok, questions, bm25_retriever, cfg)
    assert res.trajectories[1].truncated and len(res.trajectories[1].turns) == 1  # the long prompt: out in turn 1
    assert len(res.trajectories[0].turns) > 1
    assert max(widths) == 3 and min(widths) < 3  # the batch shrank
    _check_masks(res, tok, cfg.temperature, model)


def test_the_cache_with_room_ahead_samples_what_concatenating_does(bm25_retriever, monkeypatch):
    """The engine's KV cache writes into room kept ahead (rollout._growing_cache); transformers' DynamicCache copies
    itself at every token. Same seed, same ids and log-probs, through all the engine does with a cache: a shared
    prefix repeated to every row, rows leaving the batch, and layers running out of room (8 positions here)."""
    from transformers import DynamicCache

    import searchr1_lite.rollout as engine

    model, tok = load_model("tiny-qwen2", device="cpu")
    questions = ["Who painted the Mona Lisa?", "Capital of France " + "and more words " * 20, "q"]
    longest = max(len(tok(build_prompt(q, tok)).input_ids) for q in questions)
    cfg = RolloutConfig(max_turns=2, max_new_tokens=24, temperature=1.0, seed=3, max_total_tokens=longest + 24)
    grown = []
    with_room = engine._with_room
    monkeypatch.setattr(engine, "_ROOM", 8)
    monkeypatch.setattr(engine, "_with_room", lambda x, n: grown.append(x.shape[-2]) or with_room(x, n))
    room = rollout(model, tok, questions, bm25_retriever, cfg)
    assert max(grown) > 0  # a full layer ran out of room and moved to a larger buffer
    assert room.trajectories[1].truncated and len(room.trajectories[0].turns) > len(room.trajectories[1].turns)
    _check_masks(room, tok, cfg.temperature, model)
    monkeypatch.setattr(engine, "_growing_cache", DynamicCache)
    concat = rollout(model, tok, questions, bm25_retriever, cfg)
    for a, b in zip(room.trajectories, concat.trajectories):
        assert a.ids == b.ids and a.logprobs == b.logprobs


def test_long_blocks_are_fed_alone_first_and_every_row_reads_what_it_would_alone(monkeypatch):
    """Two rows with long passage blocks (300 and 400 tokens) beside two with a few tokens of feedback: `feed` runs
    the long rows' heads alone (no pads computed for the others), then all four together. Every row's next-token
    logits, now and one token later (through the cache), equal a forward over that row's own ids, unpadded, and the
    one padded feed's; so do the attention mask and positions. The long rows had holes before (shorter questions)
    and one is left-padded within the heads' chunk, so a hole or pad left unmasked shows."""
    import searchr1_lite.rollout as engine

    model, tok = load_model("tiny-qwen2", device="cpu")
    shared = tok("You answer questions by searching. " * 3, add_special_tokens=False).input_ids
    rows = [shared + tok(q, add_special_tokens=False).input_ids for q in ["Who?", "Where is it now", "When", "Why not"]]
    later = [list(range(1000, 1300)), [7, 8, 9], [10, 11, 12, 13, 14], list(range(2000, 2400))]

    def run():
        batch, widths = engine._Batch(model, tok.pad_token_id, len(rows)), []
        hook = model.register_forward_pre_hook(lambda m, a, kw: widths.append(tuple(kw["input_ids"].shape)),
                                               with_kwargs=True)
        batch.unfed = [list(r) for r in rows]
        batch.share_prefix(shared)
        batch.feed()
        batch.unfed = [list(x) for x in later]
        first = batch.feed()
        batch.unfed = [[21], [22], [23], [24]]
        second = batch.feed()
        hook.remove()
        return torch.stack([first, second]), widths[2:], batch

    split, split_widths, split_batch = run()
    assert split_widths == [(2, 395), (4, 5), (4, 1)]  # 2 x 395 + 4 x 5 positions computed, not 4 x 400
    monkeypatch.setattr(engine, "_split_width", lambda lengths: None)
    padded, padded_widths, padded_batch = run()
    assert padded_widths == [(4, 400), (4, 1)]
    assert torch.equal(split_batch.attn, padded_batch.attn) and split_batch.pos == padded_batch.pos
    torch.testing.assert_close(split, padded, atol=1e-5, rtol=0)
    for i, row in enumerate(rows):
        ids = row + later[i]
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([ids + [21 + i]])).logits[0, [len(ids) - 1, len(ids)]].float()
        torch.testing.assert_close(split[:, i], alone, atol=1e-4, rtol=0)


def test_the_split_feeds_rows_longer_than_k_alone_only_where_it_saves_enough():
    from searchr1_lite.rollout import _split_width

    assert _split_width([600, 3, 5, 1]) == 5  # 1 x 595 + 4 x 5 = 615 positions instead of 2,400
    assert _split_width([300, 280, 40, 50]) == 50  # the two long rows alone: 2 x 250 + 4 x 50 = 700 of 1,200
    assert _split_width([60, 3, 5, 1]) is None  # 75 of 240: a saving under 256 positions is not worth a forward
    assert _split_width([400] * 7 + [10]) is None  # 2,810 of 3,200: 390 saved, but less than a quarter
    assert _split_width([1, 1, 1]) is None and _split_width([0, 0, 4]) is None


@pytest.mark.slow
def test_masks_and_logprobs_with_smollm2_and_real_passages(bm25_retriever):
    model, tok = load_model("smollm2-135m-instruct", device="cpu")
    script = ScriptedLM(tok, [TWO_HOP, ["<answer> Paris </answer>"]])  # scripted searches over the real index
    res = rollout(script, tok, ["Mona Lisa painter's birthplace", "France capital"], bm25_retriever, RolloutConfig())
    _check_masks(res, tok, 1.0)
    assert "Mona Lisa" in tok.decode(res.trajectories[0].ids) and res.trajectories[1].answer == "Paris"
    cfg = RolloutConfig(max_turns=2, max_new_tokens=32, temperature=1.0, seed=1)
    res = rollout(model, tok, ["Who painted the Mona Lisa?", "What is the capital of France?"], bm25_retriever, cfg)
    _check_masks(res, tok, cfg.temperature, model)


@pytest.mark.slow
def test_shared_prompt_prefix_changes_nothing_but_speed(bm25_retriever):
    """Rows that share a prompt prefix run it once; greedy ids and log-probs equal rolling each row alone."""
    from searchr1_lite.world_prompts import SEARCH_R1_WITH_WORLD_EXAMPLES

    model, tok = load_model("smollm2-135m-instruct", device="cpu")
    cfg = RolloutConfig(max_turns=1, max_new_tokens=24, temperature=0.0, template=SEARCH_R1_WITH_WORLD_EXAMPLES,
                        response_prefix="<think>", chat=False)
    questions = ["Who painted the Mona Lisa?", "Where is the Louvre?"]
    together = rollout(model, tok, questions, bm25_retriever, cfg)
    alone = [rollout(model, tok, [q], bm25_retriever, cfg).trajectories[0] for q in questions]
    for a, b in zip(together.trajectories, alone):
        assert a.ids == b.ids and a.gen_mask == b.gen_mask
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-3


@pytest.mark.slow
def test_inserted_block_ends_on_the_token_boundary_running_text_has():
    """Tokenised alone, "…</information>\\n\\n" ends in one "\\n\\n" token that never precedes "<" in running text;
    the block is cut as in the text the policy will continue, so the worked examples and a rollout agree."""
    from searchr1_lite.models import load_model as _load
    from searchr1_lite.rollout import _observation_ids

    _, tok = _load("smollm2-135m-instruct", device="cpu")
    block = information_block([Passage("1", "\"Kalmar\"\nKalmar is a city in Sweden.")])
    ids = _observation_ids(tok, block, 500)
    assert tok.decode(ids) == block
    running = tok(block + "<think>", add_special_tokens=False).input_ids
    assert running[: len(ids)] == ids


@pytest.mark.slow
@pytest.mark.parametrize("template", ["world-examples", "world-two-hop-example", "world-typed-examples",
                                      "world-same-searches", "world-author-chain"])
def test_worked_examples_are_exactly_what_a_rollout_writes(template):
    """Replay each worked example of the demo's prompts: a scripted policy writes its turns, a retriever returns its
    passages, and the rollout's text (inserted blocks and token boundaries included) equals the example byte for
    byte, so the examples show the policy the very format it is trained in."""
    import re

    from searchr1_lite.prompt import search_template

    _, tok = load_model("smollm2-135m-instruct", device="cpu")
    body = (search_template(template).split("\n\n", 1)[1].rsplit("Question: {question}", 1)[0]
            .replace("{{", "{").replace("}}", "}"))
    examples = ["Question: " + e for e in body.split("Question: ") if e]
    assert len(examples) == (3 if template in ("world-typed-examples", "world-same-searches") else 2)
    assert template == "world-examples" or "search>" in examples[-1].split("</information>")[1]  # a second search
    block = re.compile(r"\n\n<information>(.*?)</information>\n\n", re.S)

    class ExampleRetriever:  # the passages each example's query found, as the example shows them
        def __init__(self):
            self.table = {}

        def search(self, queries, k=3):
            return [self.table[q.strip()] for q in queries]

    retriever = ExampleRetriever()
    for example in examples:
        question, response = example.split("\n", 1)
        queries = re.findall(r"<search> (.*?) </search>", response)
        blocks = block.findall(response)
        assert len(queries) == len(blocks) >= 1
        for query, docs in zip(queries, blocks):
            retriever.table[query] = [Passage(str(i), f'"{m[0]}"\n{m[1]}')
                                      for i, m in enumerate(re.findall(r'Doc \d+\(Title: "(.*?)"\) (.*)', docs))]
        turns = block.split(response)[::2]  # what the policy wrote, between the inserted blocks
        assert turns[0].startswith("<think>") and turns[-1].endswith("</answer>\n\n")
        turns = [turns[0][len("<think>"):], *turns[1:-1], turns[-1].rstrip("\n")]
        prompt = build_prompt(question[len("Question: "):], tok, search_template(template), chat=False,
                              response_prefix="<think>")
        script = [""] * prompt.count("</information>\n\n") + turns  # the scripted model counts inserted blocks
        cfg = RolloutConfig(max_turns=3, template=search_template(template), response_prefix="<think>", chat=False)
        t = rollout(ScriptedLM(tok, [script]), tok, [question[len("Question: "):]], retriever, cfg).trajectories[0]
        assert tok.decode(t.ids[t.prompt_len:]) == response[len("<think>"):].rstrip("\n")
        assert t.searches == len(queries) and t.well_formed


@pytest.mark.slow
def test_a_prompt_without_chat_template_gets_no_bos_as_in_the_authors_code():
    """The authors tokenise every prompt with add_special_tokens=False: a tokenizer that adds a BOS by default (and
    has no chat template) must not put one in the prompt ids."""
    from transformers import AutoTokenizer

    from searchr1_lite.models import _smollm2_folder

    tok = AutoTokenizer.from_pretrained(str(_smollm2_folder()), add_bos_token=True)
    tok.chat_template = None
    assert tok("Hello").input_ids[0] == tok.bos_token_id  # it would add one
    script = ["<answer> Paris </answer>"]
    t = rollout(ScriptedLM(tok, [script]), tok, ["Capital of France?"], None,
                RolloutConfig(max_turns=0)).trajectories[0]
    prompt = build_prompt("Capital of France?", tok, chat=False)
    assert t.ids[: t.prompt_len] == tok(prompt, add_special_tokens=False).input_ids
    assert tok.bos_token_id not in t.ids[: t.prompt_len] and t.answer == "Paris"


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_sampling_draws_from_the_temperature_scaled_nucleus(top_p):
    """The exponential race is a draw from p (top_p 1.0), or from the smallest prefix reaching top_p, renormalised."""
    from searchr1_lite.rollout import _sample

    probs = torch.tensor([0.4, 0.3, 0.2, 0.07, 0.03])
    logits = (probs.log() * 0.5).repeat(20_000, 1)  # temperature 0.5 brings back probs
    ids, logps = _sample(logits, 0.5, top_p, torch.Generator().manual_seed(0))
    kept = probs if top_p == 1.0 else torch.tensor([0.4, 0.3, 0.2, 0.0, 0.0])  # 0.4 + 0.3 < 0.8 <= 0.9
    seen = torch.bincount(ids, minlength=5) / len(ids)
    assert torch.allclose(seen, kept / kept.sum(), atol=0.015), seen
    assert torch.allclose(logps, probs.log()[ids], atol=1e-5)  # log-probs of the whole scaled distribution


def test_a_flat_distribution_draws_the_same_tokens_after_a_last_bit_change():
    """A random-weight model's distribution is nearly flat over 151,936 tokens: top-p sorts the whole vocabulary, and
    logits that differ in the last bit (another kernel, another machine) reorder its near-ties. The draw must not
    change with that order (it did: each rank had its noise, so reordered tokens swapped noises)."""
    from searchr1_lite.rollout import _sample

    logits = torch.randn(8, 151_936, generator=torch.Generator().manual_seed(0)) * 1e-3
    nudged = logits + torch.randn(logits.shape, generator=torch.Generator().manual_seed(1)) * 1e-9
    a, _ = _sample(logits, 1.0, 0.95, torch.Generator().manual_seed(2))
    b, _ = _sample(nudged, 1.0, 0.95, torch.Generator().manual_seed(2))
    assert (logits.argsort(-1) != nudged.argsort(-1)).any()  # the nudge does reorder the tokens
    assert torch.equal(a, b)
