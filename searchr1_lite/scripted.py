"""A language model that follows a script: for tests and lessons that need exact, known model output.

`ScriptedLM(tokenizer, scripts)` is a `torch.nn.Module` with a causal-LM interface (`input_ids`, `attention_mask`,
`position_ids`, `past_key_values` in; `.logits` out). Row `b` of a batch plays `scripts[b % len(scripts)]`, a list
of turn texts: in turn `t` it writes `turns[t]` token by token, then EOS if the text has no stop tag. The turn index is
read from the context (how many inserted `</information>` blocks and invalid-action notes it holds),
so the script reacts to what the rollout inserted, like a real policy. All probability goes to the scripted token,
so any sampling setting reproduces the script exactly. What each row has read so far lives in the cache object
it returns, which follows the rollout when rows leave the batch (`batch_select_indices`), as a real KV cache does.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .prompt import INVALID_ACTION_FEEDBACK


class ScriptCache:
    """The scripted model's "KV cache": each row's tokens so far, and the trajectory (script) it plays."""

    def __init__(self, rows: int):
        self.history: list[list[int]] = [[] for _ in range(rows)]
        self.script_of = list(range(rows))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.history = [self.history[i] for i in indices.tolist()]
        self.script_of = [self.script_of[i] for i in indices.tolist()]


class ScriptedLM(torch.nn.Module):
    def __init__(self, tokenizer, scripts: list[list[str]]):
        super().__init__()
        self.tokenizer, self.scripts = tokenizer, scripts
        self.vocab = len(tokenizer)
        self.eos = tokenizer.eos_token_id
        self.generation_config = SimpleNamespace(eos_token_id=self.eos)
        self._anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device
        self._scripts_ids = [[tokenizer(t, add_special_tokens=False).input_ids for t in s] for s in scripts]

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def _next_token(self, cache: ScriptCache, row: int) -> int:
        history = cache.history[row]
        text = self.tokenizer.decode(history, skip_special_tokens=False)
        turn = text.count("</information>\n\n") + text.count(INVALID_ACTION_FEEDBACK.strip())  # inserted so far
        turns = self._scripts_ids[cache.script_of[row] % len(self._scripts_ids)]
        script = turns[min(turn, len(turns) - 1)]
        for k in range(min(len(script), len(history)), -1, -1):  # how much of this turn is already written
            if k == 0 or history[-k:] == script[:k]:
                return script[k] if k < len(script) else self.eos
        return self.eos

    def forward(self, input_ids, attention_mask=None, past_key_values=None, **kwargs):
        rows, width = input_ids.shape
        # else: a new rollout
        cache = past_key_values if isinstance(past_key_values, ScriptCache) else ScriptCache(rows)
        fed_mask = attention_mask[:, -width:] if attention_mask is not None else torch.ones_like(input_ids)
        logits = torch.full((rows, width, self.vocab), -1e4)  # [batch, width, vocab]
        for b in range(rows):
            cache.history[b].extend(int(t) for t, m in zip(input_ids[b], fed_mask[b]) if m)
            logits[b, -1, self._next_token(cache, b)] = 0.0
        return SimpleNamespace(logits=logits.to(input_ids.device), past_key_values=cache)
