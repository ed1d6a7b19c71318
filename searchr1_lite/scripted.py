"""A language model that follows a script: for tests and lessons that need exact, known model output.

`ScriptedLM(tokenizer, scripts)` is a `torch.nn.Module` with a causal-LM interface (`input_ids`, `attention_mask`,
`position_ids`, `past_key_values` in; `.logits` out). Row `b` of a batch plays `scripts[b % len(scripts)]`, a list
of turn texts: in turn `t` it writes `turns[t]` token by token, then EOS if the text has no stop tag. The turn index is
read from the context (how many inserted `</information>` blocks and invalid-action notes it holds), so the script reacts to
what the rollout inserted, like a real policy. All probability goes to the scripted token, so any sampling setting
reproduces the script exactly.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .prompt import INVALID_ACTION_FEEDBACK


class ScriptedLM(torch.nn.Module):
    def __init__(self, tokenizer, scripts: list[list[str]]):
        super().__init__()
        self.tokenizer, self.scripts = tokenizer, scripts
        self.vocab = len(tokenizer)
        self.eos = tokenizer.eos_token_id
        self.generation_config = SimpleNamespace(eos_token_id=self.eos)
        self._anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device
        self.history: list[list[int]] = []
        self._scripts_ids = [[tokenizer(t, add_special_tokens=False).input_ids for t in s] for s in scripts]

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def _next_token(self, row: int) -> int:
        history = self.history[row]
        text = self.tokenizer.decode(history, skip_special_tokens=False)
        turn = text.count("</information>\n\n") + text.count(INVALID_ACTION_FEEDBACK.strip())  # inserted so far
        turns = self._scripts_ids[row % len(self._scripts_ids)]
        script = turns[min(turn, len(turns) - 1)]
        for k in range(min(len(script), len(history)), -1, -1):  # how much of this turn is already written
            if k == 0 or history[-k:] == script[:k]:
                return script[k] if k < len(script) else self.eos
        return self.eos

    def forward(self, input_ids, attention_mask=None, past_key_values=None, **kwargs):
        rows, width = input_ids.shape
        if attention_mask is None or attention_mask.shape[1] == width:  # nothing seen before: a new rollout
            self.history = [[] for _ in range(rows)]
        fed_mask = attention_mask[:, -width:] if attention_mask is not None else torch.ones_like(input_ids)
        logits = torch.full((rows, width, self.vocab), -1e4)  # [batch, width, vocab]
        for b in range(rows):
            self.history[b].extend(int(t) for t, m in zip(input_ids[b], fed_mask[b]) if m)
            logits[b, -1, self._next_token(b)] = 0.0
        return SimpleNamespace(logits=logits.to(input_ids.device), past_key_values=past_key_values)
