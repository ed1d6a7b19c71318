"""Multi-turn batched generation with search: the exact token ids of each trajectory, and which ones were sampled.

    prompt ─▶ generate until </search> | </answer> | EOS (each row stops on its own) ─▶ parse every row's turn
      ▲        one batched retriever.search for all search actions ◀─┘
      └──── insert "\\n\\n<information>Doc 1(Title: …) …</information>\\n\\n" (or the invalid-action feedback) ──┘
    … up to `max_turns` turns that may search, then one last turn whose search is not answered.

The engine keeps one KV cache for the whole batch across turns: inserted tokens are appended to the cache (a
prefill of just those tokens), never re-encoding the context, and each token is written into room the cache keeps
ahead rather than concatenated (`_growing_cache`). Rows are padded in place (attention-mask holes, explicit
position ids), so every row keeps exactly the ids it was fed and sampled; a row with a long block to feed (passages,
beside others' short feedback) runs its head alone first, so the others compute no pads meanwhile. `gen_mask` is
born here: 1 for a token the policy sampled, 0 for the prompt, inserted passages and feedback. Nothing generated is
ever decoded and re-tokenised — text is decoded only to *read* it (stop strings, parsing).

Simplified relative to the paper (verl + vLLM): Hugging Face forward passes with a Python sampling loop. Within a turn,
a row that has stopped keeps its place until the turn ends (as `model.generate` does); between turns, rows that are
done (answered, truncated) leave the batch and its cache, so a third turn that two rows of 32 need costs those two.
A sampled EOS stays in the sequence (it was sampled); the authors' decode-then-retokenise path dropped it.
Log-probs are those of the sampling distribution's temperature-scaled logits (before top-p), as TRL computes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import torch

from .models import cache_arg, returned_cache
from .prompt import (
    INVALID_ACTION_FEEDBACK,
    STOP_STRINGS,
    Action,
    build_prompt,
    information_block,
    parse_action,
    search_template,
)
from .retrieval import TOPK, Retriever


@dataclass
class RolloutConfig:
    """Sampling and turn limits. Defaults are the paper's GRPO recipe except where noted."""

    max_turns: int = 4  # turns that may search; one more follows that may only answer
    max_new_tokens: int = 500  # per turn
    max_obs_tokens: int = 500  # cap on one inserted <information> block
    max_total_tokens: int = 4096  # prompt + everything; a longer trajectory stops, marked truncated
    topk: int = TOPK  # passages per search
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 0.95
    seed: int = 0
    # a name (prompt.search_template: paper, worked-example, world-...) or a text with {question}
    template: str = "paper"
    response_prefix: str = ""  # text the response starts with, e.g. "<think>" (a deviation; paper: none)
    chat: bool = True  # apply the tokenizer's chat template (the authors do); False = plain text completion


@dataclass
class Turn:
    text: str  # what the policy wrote this turn (decoded only to read it)
    action: Action
    generated: int  # tokens sampled this turn
    inserted: int = 0  # tokens inserted after it (passages or feedback)
    cut: bool = False  # ran out of max_new_tokens before a stop (a `<search>` cut there is lost: no reward)


@dataclass
class Trajectory:
    question: str
    prompt_len: int
    ids: list[int]  # every token the model saw, in order: prompt, sampled, inserted
    gen_mask: list[int]  # 1 = sampled by the policy
    logprobs: list[float]  # log-prob of each sampled token under the sampling policy (0.0 where gen_mask = 0)
    turns: list[Turn] = field(default_factory=list)
    answer: str | None = None
    truncated: bool = False
    queries: list[str] = field(default_factory=list)

    @property
    def searches(self) -> int:
        return len(self.queries)

    @property
    def invalid_actions(self) -> int:
        return sum(not t.action.valid for t in self.turns)

    @property
    def response_length(self) -> int:
        """Tokens the policy generated (what the paper's length curves count)."""
        return sum(self.gen_mask)

    @property
    def well_formed(self) -> bool:
        return self.answer is not None and self.invalid_actions == 0

    def sampled_ids(self) -> list[int]:
        return [t for t, m in zip(self.ids, self.gen_mask) if m]


@dataclass
class RolloutResult:
    trajectories: list[Trajectory]
    seconds_generate: float
    seconds_search: float
    generated_tokens: int

    def tensors(self, pad_id: int) -> dict[str, torch.Tensor]:
        """Right-padded tensors for the loss: input_ids, attention_mask, gen_mask, logprobs; each [batch, max_len]."""
        n, longest = len(self.trajectories), max(len(t.ids) for t in self.trajectories)
        out = {
            "input_ids": torch.full((n, longest), pad_id, dtype=torch.long),  # [batch, seq]
            "attention_mask": torch.zeros(n, longest, dtype=torch.long),
            "gen_mask": torch.zeros(n, longest, dtype=torch.long),
            "logprobs": torch.zeros(n, longest, dtype=torch.float32),
        }
        for i, t in enumerate(self.trajectories):
            k = len(t.ids)
            out["input_ids"][i, :k] = torch.tensor(t.ids)
            out["attention_mask"][i, :k] = 1
            out["gen_mask"][i, :k] = torch.tensor(t.gen_mask)
            out["logprobs"][i, :k] = torch.tensor(t.logprobs)
        return out


def _growing_cache():
    """A DynamicCache whose layers write each step's keys and values into room kept ahead, instead of concatenating.

    transformers' DynamicLayer grows by `torch.cat`, which copies the whole cache at every decoded token: with 32 rows
    of 700 tokens, about 1 GB a step for SmolLM2-135M and a third of a CPU decode step (0.29 s → 0.19 s). Here a
    layer keeps `_ROOM` more positions than it holds and copies only when they run out; attention reads a view of
    the filled part, so the numbers are the same (benchmarks/bench_kv_cache.py: the demo's rollouts, side by side).
    A transformers without cache layers (`cache_utils.DynamicLayer`) gets its plain DynamicCache."""
    from transformers import DynamicCache

    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return DynamicCache()

    class GrowingLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            # the first update (again after a reset), set up as DynamicLayer's would in 4.56 (no is_initialized) to 5.x
            if not getattr(self, "is_initialized", self.keys is not None):
                self.dtype, self.device, self.is_initialized = key_states.dtype, key_states.device, True
                self.keys, self.values, self._kb = key_states[..., :0, :], value_states[..., :0, :], None
            n, m = self.keys.shape[-2], key_states.shape[-2]
            if self._kb is None or n + m > self._kb.shape[-2]:  # out of room: copy once into a larger buffer
                self._kb, self._vb = (_with_room(x, n + m + _ROOM) for x in (self.keys, self.values))
            self._kb[..., n : n + m, :] = key_states
            self._vb[..., n : n + m, :] = value_states
            self._view(n + m)
            return self.keys, self.values

        def _view(self, n):  # keys and values: views of the buffers' filled part
            self.keys, self.values = self._kb[..., :n, :], self._vb[..., :n, :]

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.get_seq_length() > 0:
                self._kb, self._vb = (b.repeat_interleave(repeats, dim=0) for b in (self._kb, self._vb))
                self._view(self.keys.shape[-2])

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.get_seq_length() > 0:
                self._kb, self._vb = self._kb[indices, ...], self._vb[indices, ...]
                self._view(self.keys.shape[-2])

    cache = DynamicCache()
    if not (hasattr(cache, "layer_class_to_replicate") and cache.layers == []):
        return cache
    cache.layer_class_to_replicate = GrowingLayer
    return cache


_ROOM = 256  # positions a cache layer keeps free: one copy every 256 decoded tokens, at most 256 unused a row


def _with_room(x: torch.Tensor, length: int) -> torch.Tensor:
    """A buffer like `x` ([batch, heads, n, dim]) with `length` positions, its first n filled from x."""
    out = x.new_empty(*x.shape[:-2], length, x.shape[-1])
    out[..., : x.shape[-2], :] = x
    return out


class _Batch:
    """The growing batch: one KV cache, an attention mask with holes, and each row's tokens not yet fed."""

    def __init__(self, model, pad_id: int, rows: int):
        self.model, self.pad_id, self.device = model, pad_id, model.device
        self.cache = _growing_cache()
        self.attn = torch.zeros(rows, 0, dtype=torch.long, device=self.device)  # [batch, seen]
        self.pos = [0] * rows  # next position id of each row
        self.unfed: list[list[int]] = [[] for _ in range(rows)]

    @torch.inference_mode()
    def share_prefix(self, prefix: list[int]) -> None:
        """Run a prefix that every row starts with once, at batch size 1, and give each row a copy of its cache.
        The instruction and worked examples are most of a prompt: this saves (rows - 1) x len(prefix) tokens."""
        out = self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True,
                         **cache_arg(self.model, self.cache))
        cache = returned_cache(out)
        if not hasattr(cache, "batch_repeat_interleave"):  # a model without a KV cache: feed it all
            self.cache = _growing_cache()
            return
        self.cache = cache
        self.cache.batch_repeat_interleave(len(self.unfed))
        self.attn = torch.ones(len(self.unfed), len(prefix), dtype=torch.long, device=self.device)
        self.pos = [len(prefix)] * len(self.unfed)
        self.unfed = [u[len(prefix) :] for u in self.unfed]

    def keep(self, rows: list[int]) -> None:
        """Keep only these batch rows (in this order), dropping the others' cache, mask and positions."""
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.cache.batch_select_indices(index)
        self.attn = self.attn[index]
        self.pos = [self.pos[r] for r in rows]
        self.unfed = [self.unfed[r] for r in rows]

    @torch.inference_mode()
    def feed(self) -> torch.Tensor:
        """Run every row's unfed tokens through the model, left-padded to one chunk (rows with much more to feed than
        the others first run their head alone, `_feed_heads`); logits at the chunk's end."""
        k = _split_width([len(u) for u in self.unfed])
        if k is not None and self._splittable():
            self._feed_heads([r for r, u in enumerate(self.unfed) if len(u) > k], k)
        width = max(1, max(len(u) for u in self.unfed))
        ids, mask, pos = _left_padded(self.unfed, self.pos, width, self.pad_id, self.device)
        for i, u in enumerate(self.unfed):
            self.pos[i] += len(u)
            self.unfed[i] = []
        self.attn = torch.cat([self.attn, mask], dim=1)  # [batch, seen + width]
        out = self.model(
            input_ids=ids, attention_mask=self.attn, position_ids=pos, use_cache=True, logits_to_keep=1,
            **cache_arg(self.model, self.cache),  # logits: the last position's only
        )
        self.cache = returned_cache(out)
        return out.logits[:, -1, :].float()  # [batch, vocab]

    def _splittable(self) -> bool:
        """Whether the cache holds full-attention layers, each as long as the mask, that `_feed_heads` can copy and
        extend (the engine builds its cache without a config, so no sliding-window layers: checked all the same)."""
        try:
            from transformers.cache_utils import DynamicLayer
        except ImportError:  # a transformers without cache layers
            return False
        layers, seen = getattr(self.cache, "layers", None), self.attn.shape[1]
        return seen > 0 and bool(layers) and all(
            isinstance(x, DynamicLayer) and not getattr(x, "is_sliding", False) and x.keys.shape[-2] == seen
            for x in layers)

    def _feed_heads(self, rows: list[int], k: int) -> None:
        """Feed these rows' tokens but their last k, alone, so that the other rows do not compute pads meanwhile.

        A row with a 400-token passage block beside 14 rows with 50-token feedback would make `feed` compute
        15 x 400 positions; here it computes 1 x 350 and then 15 x 50. The cache gets the same layout as one feed
        (the others' positions are holes, masked, as their left pads were) and the same numbers up to float rounding:
        the rows' keys and values are computed from a copy of their cache rows (memory: about twice those rows'
        cache, for a moment) and written back. tests/test_rollout.py compares with one padded feed."""
        from transformers import DynamicCache

        index = torch.tensor(rows, device=self.device)
        width, seen = max(len(self.unfed[r]) for r in rows) - k, self.attn.shape[1]
        ids, mask, pos = _left_padded([self.unfed[r][:-k] for r in rows], [self.pos[r] for r in rows], width,
                                      self.pad_id, self.device)
        sub = DynamicCache()
        for i, layer in enumerate(self.cache.layers):
            sub.update(layer.keys[index], layer.values[index], i)
        out = self.model(input_ids=ids, attention_mask=torch.cat([self.attn[index], mask], dim=1), position_ids=pos,
                         use_cache=True, logits_to_keep=1, **cache_arg(self.model, sub))
        for i, layer in enumerate(returned_cache(out).layers):  # the new positions, zeros (holes) for other rows
            fresh_keys, fresh_values = layer.keys[..., seen:, :], layer.values[..., seen:, :]  # [rows, heads, w, dim]
            keys = fresh_keys.new_zeros(len(self.unfed), *fresh_keys.shape[1:])
            values = torch.zeros_like(keys)
            keys[index], values[index] = fresh_keys, fresh_values
            self.cache.update(keys, values, i)
        holes = torch.zeros(len(self.unfed), width, dtype=torch.long, device=self.device)
        holes[index] = mask
        self.attn = torch.cat([self.attn, holes], dim=1)
        for r in rows:
            self.pos[r] += len(self.unfed[r]) - k
            self.unfed[r] = self.unfed[r][-k:]


def _left_padded(seqs: list[list[int]], starts: list[int], width: int, pad_id: int, device):
    """Token ids, attention mask and position ids ([rows, width] each, on `device`) of these sequences, left-padded
    to width; row i's positions count on from starts[i]."""
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    pos = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, (u, start) in enumerate(zip(seqs, starts)):
        if u:
            ids[i, width - len(u) :] = torch.tensor(u)
            mask[i, width - len(u) :] = 1
            pos[i, width - len(u) :] = torch.arange(start, start + len(u))
        pos[i, : width - len(u)] = start + len(u)  # pads: any position, they are masked
    return ids.to(device), mask.to(device), pos.to(device)


_MIN_SAVED = 256  # rows x positions a split must save: a second forward and a copy of cache rows are not free


def _split_width(lengths: list[int]) -> int | None:
    """The k for which feeding the rows longer than k their first tokens alone, then every row its last <= k
    together, computes fewest rows x positions; None when that saves less than a quarter of one padded feed, or
    fewer than _MIN_SAVED (both rules tuned on a CPU, where a position costs about the same at any batch size)."""
    width, rows = max(lengths), len(lengths)
    cost = {k: rows * k + sum(n > k for n in lengths) * (width - k) for k in set(lengths) if k > 0}
    k = min(cost, key=cost.get, default=None)
    if k is None or k >= width or cost[k] > min(0.75 * rows * width, rows * width - _MIN_SAVED):
        return None
    return k


def _common_prefix(rows: list[list[int]]) -> int:
    """Length of the longest prefix all rows share, leaving every row at least one token of its own to feed."""
    n = min(len(r) for r in rows) - 1
    first = rows[0]
    for r in rows[1:]:
        k = 0
        while k < n and r[k] == first[k]:
            k += 1
        n = k
    return max(0, n)


def _sample(logits: torch.Tensor, temperature: float, top_p: float,
            gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row; return (ids [rows], log-probs [rows]) under the temperature-scaled distribution.

    Top-p takes the 256, then 4,096 most likely tokens and sorts the whole vocabulary only when a row's nucleus is
    wider still (a full sort of 49k-151k entries costs tens of ms a step on a CPU). The draw is an exponential race,
    argmax(p / E) with E ~ Exp(1) = -log U: exactly a draw from p, cheaper than multinomial.
    """
    if temperature <= 0:
        ids = logits.argmax(-1)  # [rows]
        return ids, torch.log_softmax(logits, -1).gather(-1, ids[:, None])[:, 0]
    logp = torch.log_softmax(logits / temperature, dim=-1)  # [rows, vocab]
    probs = logp.exp()
    if top_p < 1.0:
        for k in (256, 4096, probs.shape[-1]):
            top, idx = probs.topk(min(k, probs.shape[-1]), dim=-1)  # [rows, k], descending
            if k >= probs.shape[-1] or bool((top.sum(-1) >= top_p).all()):
                break
        top = top.masked_fill(top.cumsum(-1) - top >= top_p, 0.0)  # keep the smallest prefix reaching top_p
    else:
        top, idx = probs, None
    race = -torch.rand(top.shape, generator=gen).log().to(top.device)  # [rows, k] ~ Exp(1)
    if idx is not None and top.shape[-1] == probs.shape[-1]:
        # The whole vocabulary, sorted: each token races with the noise of its id, not of its rank. A flat distribution
        # (a random-weight model) has many probabilities that tie or differ in the last bit, and a last-bit change in
        # the logits reorders them; noise by rank would then hand them each other's noise and change the draw.
        race = race.gather(-1, idx)
    choice = (top / race).argmax(-1, keepdim=True)  # [rows, 1]
    ids = (idx.gather(-1, choice) if idx is not None else choice)[:, 0]  # [rows]
    return ids, logp.gather(-1, ids[:, None])[:, 0]


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    cfg = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(cfg if isinstance(cfg, (list, tuple)) else [cfg])
    return {i for i in ids if i is not None}


def _observation_ids(tokenizer, block: str, cap: int) -> list[int]:
    """Token ids of an <information> block, its passages cut so that the whole block fits in `cap` tokens."""
    head, rest = block.split("<information>", 1)
    body, tail = rest.rsplit("</information>", 1)
    enc = lambda s: tokenizer(s, add_special_tokens=False).input_ids  # noqa: E731
    start, end = enc(head + "<information>"), _ids_before_tag(tokenizer, "</information>" + tail)
    return start + enc(body)[: max(0, cap - len(start) - len(end))] + end


def _ids_before_tag(tokenizer, text: str) -> list[int]:
    """Ids of `text` as they come out when a tag follows it, which is what the policy writes next. Tokenised alone,
    a trailing "\n\n" is one token (SmolLM2: 1116) that running text never puts before "<"; a small model that
    sees that pair loses the thread (measured: after `</information>` it starts a new question instead of <think>)."""
    ids = tokenizer(text + "<", add_special_tokens=False).input_ids
    if ids and tokenizer.decode(ids[-1:]) == "<" and tokenizer.decode(ids[:-1]) == text:
        return ids[:-1]
    return tokenizer(text, add_special_tokens=False).input_ids


def rollout(model, tokenizer, questions: Sequence[str], retriever: Retriever | None,
            config: RolloutConfig | None = None, progress: bool = False,
            contexts: Sequence[str] | None = None) -> RolloutResult:
    """Roll out one trajectory per question (repeat a question n times for a GRPO group). `contexts`: one text per
    question for a template's {context} slot (the RAG baseline's passages)."""
    from tqdm.auto import tqdm

    cfg = config or RolloutConfig()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = _eos_ids(model, tokenizer)
    gen = torch.Generator().manual_seed(cfg.seed)
    feedback_ids = tokenizer(INVALID_ACTION_FEEDBACK, add_special_tokens=False).input_ids
    template = search_template(cfg.template)  # a name resolved once, not once a question
    trajs = []
    for q, context in zip(questions, contexts or [None] * len(questions), strict=True):
        text = build_prompt(q, tokenizer, template, chat=cfg.chat, response_prefix=cfg.response_prefix,
                            context=context)
        ids = tokenizer(text, add_special_tokens=False).input_ids  # as the authors: no BOS, chat template or not
        trajs.append(Trajectory(q, len(ids), list(ids), [0] * len(ids), [0.0] * len(ids)))
    batch = _Batch(model, pad_id, len(trajs))
    for i, t in enumerate(trajs):
        batch.unfed[i] = list(t.ids)
    shared = _common_prefix([t.ids for t in trajs])
    if len(trajs) > 1 and shared >= 16:
        batch.share_prefix(trajs[0].ids[:shared])
    done = [False] * len(trajs)
    slot = list(range(len(trajs)))  # trajectory -> its row in the batch (rows that are done leave the batch)
    t_gen = t_search = 0.0
    n_generated = 0
    bar = tqdm(total=len(trajs), desc="rollout", unit="traj", disable=not progress)

    for turn in range(cfg.max_turns + 1):
        live = [i for i in range(len(trajs)) if not done[i]]
        if not live:
            break
        start = time.perf_counter()
        turn_ids, cut, sampled = _sample_turn(batch, trajs, live, slot, cfg, gen, eos, tokenizer)
        t_gen += time.perf_counter() - start
        n_generated += sampled

        may_search = turn < cfg.max_turns
        searches: list[tuple[int, str]] = []
        for i in live:
            t = trajs[i]
            text = tokenizer.decode(turn_ids[i], skip_special_tokens=True)
            action = parse_action(text)
            t.turns.append(Turn(text, action, len(turn_ids[i]), cut=i in cut))
            if action.kind == "answer":
                t.answer, done[i] = action.content, True
            elif t.truncated or not may_search:
                done[i] = True
            elif action.kind == "search":
                searches.append((i, action.content))
            else:
                _insert(t, batch, slot[i], feedback_ids, cfg)
        if searches:
            start = time.perf_counter()
            results = retriever.search([q for _, q in searches], cfg.topk) if retriever else [[] for _ in searches]
            t_search += time.perf_counter() - start
            for (i, query), passages in zip(searches, results):
                trajs[i].queries.append(query)
                _insert(trajs[i], batch, slot[i],
                        _observation_ids(tokenizer, information_block(passages), cfg.max_obs_tokens), cfg)
        for i in live:
            done[i] = done[i] or trajs[i].truncated
        bar.update(sum(done[i] for i in live))
        going = [i for i in live if not done[i]]
        if going and len(going) < len(live):
            batch.keep([slot[i] for i in going])
            slot = [0] * len(trajs)
            for row, i in enumerate(going):
                slot[i] = row
    bar.close()
    return RolloutResult(trajs, t_gen, t_search, n_generated)


def _sample_turn(batch: _Batch, trajs: list[Trajectory], live: list[int], slot: list[int], cfg: RolloutConfig,
                 gen: torch.Generator, eos: set[int], tokenizer) -> tuple[dict[int, list[int]], set[int], int]:
    """One turn of the live trajectories, sampled together token by token until each stops: at `</search>`,
    `</answer>` or EOS, at `max_total_tokens` (truncated), or when the turn's `max_new_tokens` run out (cut).
    Returns (each one's new tokens, the cut ones, the tokens sampled)."""
    turn_ids: dict[int, list[int]] = {i: [] for i in live}
    active, n_generated = set(live), 0
    logits = batch.feed()
    for _ in range(cfg.max_new_tokens):
        rows = sorted(active)
        new, lps = _sample(logits[[slot[i] for i in rows]], cfg.temperature, cfg.top_p, gen)
        for i, tok, lp in zip(rows, new.tolist(), lps.tolist()):
            t = trajs[i]
            t.ids.append(tok), t.gen_mask.append(1), t.logprobs.append(lp)
            turn_ids[i].append(tok)
            batch.unfed[slot[i]].append(tok)
            tail = tokenizer.decode(turn_ids[i][-12:], skip_special_tokens=False)
            if tok in eos or any(s in tail for s in STOP_STRINGS):
                active.discard(i)
            elif len(t.ids) >= cfg.max_total_tokens:
                t.truncated = True
                active.discard(i)
        n_generated += len(rows)
        if not active:
            break
        logits = batch.feed()
    return turn_ids, active, n_generated  # still active: rows still writing when the turn's tokens ran out


def _insert(t: Trajectory, batch: _Batch, row: int, ids: list[int], cfg: RolloutConfig) -> None:
    """Append inserted tokens (gen_mask 0) to a trajectory and to the row's next feed."""
    if len(t.ids) + len(ids) > cfg.max_total_tokens:
        t.truncated = True
        return
    t.ids.extend(ids), t.gen_mask.extend([0] * len(ids)), t.logprobs.extend([0.0] * len(ids))
    t.turns[-1].inserted = len(ids)
    batch.unfed[row].extend(ids)
