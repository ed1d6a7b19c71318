"""PPO with a critic: token rewards, GAE through the retrieved blocks, whitened advantages, the clipped value loss.

As the authors' trainer does it (their veRL fork: `verl/trainer/ppo/core_algos.py`, `ray_trainer.py`,
`workers/critic/dp_critic.py`, read at a14dc3a):
- **Rewards per token.** The EM score sits on the last token of the response; every generated token also pays
  `-kl_coef * (log pi_old - log pi_ref)` (k1). The KL is in the *reward* (GRPO puts it in the loss), and it is 0 on
  retrieved tokens.
- **GAE**, gamma = lam = 1, over every response token, the retrieved ones included: the recursion steps through an
  `<information>` block as through any token, with reward 0 there. With gamma = lam = 1 it telescopes:
  A_t = sum_{t' >= t} r_t' - V_t, so the values inside a block change no generated token's advantage, wherever the
  block sits. With lam < 1 they would: `gae(..., mask=gen_mask)` instead skips the blocks, the other choice.
- **Whitening**: mean and (unbiased) std over the tokens of the whole batch, mean subtracted.
- **Policy loss**: PPO's clipped objective, token mean over generated tokens only (the retrieved-token mask).
- **Value loss**: 0.5 * mean(max((V - R)^2, (clip(V, V_old +- value_clip) - R)^2)).

Deviations, each a choice: the value loss covers generated tokens only (theirs also covers retrieved tokens, and
one slot past the end), so the critic is never trained on a state inside a passage; and so the whitening statistics
are over generated tokens only too (theirs: the whole response, whose block values their critic is trained on):
together with gamma = lam = 1 this makes a generated token's advantage independent of every value inside a block,
trained or not; the value head starts at zero
(theirs: a random score head), so the first advantages are the plain returns and the shared trunk gets no value
gradient until the head has learned something; no entropy bonus (theirs: 0.001).

V_t is the value of the state *before* token t: the head reads the hidden state at t - 1, the same position whose
logits give log p(token t). The critic is either a value head on the policy's own trunk (`shared`: one backbone
pass gives log-probs and values) or a separate model with its own LoRA adapter (`separate`, as the authors: a
second copy of the base weights); see `benchmarks/bench_ppo.py` for what each costs.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .grpo import (
    GRPOConfig,
    TrajectoryBatch,
    _adapter_off,
    grpo_loss,
    k3_kl,
    longest_first,
    masked_hidden,
    project_logprobs,
    scatter_tokens,
    step_if_finite,
)


@dataclass
class PPOConfig:
    """PPO's own settings, the authors' where a comment says so; `vf_coef`, `critic` (theirs: a separate model) and
    `critic_lr` (theirs 1e-5, for a whole critic; ours trains a head, and a LoRA adapter when separate) are ours.
    Clip, micro-batch, chunk and gradient norm are the `grpo` section's."""

    gamma: float = 1.0  # GAE discount (authors: 1.0)
    lam: float = 1.0  # GAE lambda (authors: 1.0)
    kl_coef: float = 0.001  # KL penalty in the reward, k1 on generated tokens (authors: 0.001)
    value_clip: float = 0.5  # V may move this far from V_old before the clip stops its gradient (authors: 0.5)
    vf_coef: float = 1.0  # the value loss's weight in the shared trunk's loss (a separate critic has its own step)
    whiten: bool = True  # whiten advantages over the batch's generated tokens (authors: yes, over the response)
    critic: Literal["shared", "separate"] = "shared"  # a value head on the policy's trunk, or a LoRA model of its own
    critic_lr: float = 1e-4  # the critic's learning rate (the head's; with `separate`, its adapter's too)


# ---------------------------------------------------------------- the arithmetic (tensors in, tensors out)


def response_mask(gen_mask: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """1 from the first generated token to the end of the row (retrieved blocks included, padding not), `[b, s]`."""
    return (gen_mask.long().cummax(dim=1).values * attention_mask.long()).to(gen_mask.dtype)


def token_rewards(scores: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
                  gen_mask: torch.Tensor, resp_mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """`[b, s]`: each row's score on its last response token, minus kl_coef * (old - ref) on generated tokens."""
    rewards = torch.zeros(resp_mask.shape, dtype=torch.float32, device=resp_mask.device)
    if ref_logp is not None and kl_coef:
        rewards -= kl_coef * (old_logp - ref_logp) * gen_mask.float()
    positions = torch.arange(resp_mask.shape[1], device=resp_mask.device)
    last = (positions * resp_mask.long()).argmax(dim=1)  # [b]: the last 1 of each row
    has = resp_mask.bool().any(dim=1)
    rewards[has, last[has]] += scores.float().to(rewards.device)[has]
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), `[b, s]`, by generalised advantage estimation over the positions where `mask` is 1.

    Positions with mask 0 are skipped, not steps: the recursion carries over them (their advantage and return are 0,
    and their reward and value are not read). The authors pass the response mask (a retrieved block is a run of
    steps with reward 0); passing `gen_mask` makes the block a single transition instead. After the last step of a
    row the value is 0 (the episode ends).
    """
    adv = torch.zeros_like(rewards, dtype=torch.float32)
    next_value = torch.zeros(rewards.shape[0], dtype=torch.float32, device=rewards.device)
    running = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[1])):
        on = mask[:, t].bool()
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = torch.where(on, delta + gamma * lam * running, running)
        next_value = torch.where(on, values[:, t].float(), next_value)
        adv[:, t] = torch.where(on, running, torch.zeros_like(running))
    returns = (adv + values.float()) * mask.float()
    return adv, returns


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps), mean and unbiased variance over the masked entries of the whole batch; masked-out
    entries come back 0."""
    m = mask.float()
    n = m.sum()
    if n < 2:
        return x * m
    mean = (x * m).sum() / n
    var = (((x - mean) * m) ** 2).sum() / (n - 1)
    return (x - mean) * torch.rsqrt(var + eps) * m


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float, n_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """0.5 * token mean over `mask` of max((V - R)^2, (clip(V, V_old +- clip) - R)^2), and how many tokens the clip
    bound. `n_tokens`: the whole batch's count, when this is one micro-batch of it."""
    m = mask.float()
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    losses = torch.max((values - returns) ** 2, (clipped - returns) ** 2)
    n = n_tokens or max(int(m.sum().item()), 1)
    bound = (((clipped - returns) ** 2 > (values - returns) ** 2).float() * m).sum().detach()
    return 0.5 * (losses * m).sum() / n, bound


# ---------------------------------------------------------------- the critic


class ValueHead(torch.nn.Module):
    """hidden state -> a scalar value, in float32 whatever the trunk's dtype. Starts at zero (see the module doc)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.score.weight)
        torch.nn.init.zeros_(self.score.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.score(hidden.float())[..., 0]


@dataclass
class Critic:
    head: ValueHead
    optimizer: Any  # over the head, and the separate trunk's adapter if any
    trunk: Any = None  # None = shared: the policy's own backbone; else a model with its own LoRA adapter

    def parameters(self) -> list[torch.nn.Parameter]:
        own = [p for p in self.trunk.parameters() if p.requires_grad] if self.trunk is not None else []
        return own + list(self.head.parameters())

    def state_dict(self) -> dict:
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])


def make_critic(policy, cfg: PPOConfig, load_trunk=None) -> Critic:
    """A critic for `policy`: a zero value head on its trunk, or (`separate`) on the model `load_trunk()` returns."""
    trunk = None
    if cfg.critic == "separate":
        if load_trunk is None:
            raise ValueError("critic='separate' needs a model to load: pass load_trunk (train() loads the policy's "
                             "base model with a LoRA adapter of its own)")
        trunk = load_trunk()
    hidden = (trunk or policy).config.hidden_size
    head = ValueHead(hidden).to(next(policy.parameters()).device)
    critic = Critic(head, None, trunk)
    critic.optimizer = torch.optim.AdamW(critic.parameters(), lr=cfg.critic_lr, weight_decay=0.01)
    return critic


def _values(critic: Critic, policy, ids, attn, mask) -> torch.Tensor:
    h, sel = masked_hidden(critic.trunk or policy, ids, attn, mask)
    return scatter_tokens(critic.head(h), sel)


# ---------------------------------------------------------------- one step


def ppo_advantages(model, critic: Critic, batch: TrajectoryBatch, scores: torch.Tensor, gcfg: GRPOConfig,
                   pcfg: PPOConfig, ref_model=None, gae_mask: str = "response") -> dict[str, torch.Tensor]:
    """Everything the update needs, before it: old log-probs (recomputed, as veRL does), reference log-probs, old
    values, token rewards, advantages and returns, each `[batch, seq]`. `gae_mask="generated"` skips the blocks."""
    if gae_mask not in ("response", "generated"):
        raise ValueError(f"gae_mask must be 'response' or 'generated', not {gae_mask!r}")
    device = next(model.parameters()).device
    loss_mask = batch.gen_mask.clone()
    loss_mask[:, 0] = 0
    resp = response_mask(loss_mask, batch.attention_mask)
    n = len(batch)
    old_logp, ref_logp, old_values = (torch.zeros(batch.input_ids.shape) for _ in range(3))
    model.eval()
    if critic.trunk is not None:  # the baseline's values without dropout, as the old log-probs
        critic.trunk.eval()
    with torch.no_grad():
        for start in range(0, n, gcfg.micro_batch_size):
            rows = slice(start, start + gcfg.micro_batch_size)
            width = int(batch.attention_mask[rows].sum(1).max())  # right-padded: the rest is padding for all
            cols = (rows, slice(0, width))
            ids, attn = batch.input_ids[cols].to(device), batch.attention_mask[cols].to(device)
            lm, rm = loss_mask[cols].to(device), resp[cols].to(device)
            h, sel = masked_hidden(model, ids, attn, rm)  # one pass: values (shared) and log-probs
            keep = lm[:, 1:][sel].bool()  # the generated tokens among the response's
            hk = h[keep]  # a copy: made once
            lp, _ = project_logprobs(hk, ids[:, 1:][sel][keep], model.get_output_embeddings(), gcfg.temperature,
                                     _chunk(gcfg, hk))
            old_logp[cols] = scatter_tokens(lp, lm[:, 1:].bool()).cpu()
            v = scatter_tokens(critic.head(h), sel) if critic.trunk is None else _values(critic, model, ids, attn, rm)
            old_values[cols] = v.cpu()
            if pcfg.kl_coef:
                with nullcontext() if ref_model is not None else _adapter_off(model):
                    h, sel = masked_hidden(ref_model or model, ids, attn, lm)
                    lp, _ = project_logprobs(h, ids[:, 1:][sel], (ref_model or model).get_output_embeddings(),
                                             gcfg.temperature, _chunk(gcfg, h))
                ref_logp[cols] = scatter_tokens(lp, sel).cpu()
    rewards = token_rewards(scores, old_logp, ref_logp if pcfg.kl_coef else None, loss_mask, resp, pcfg.kl_coef)
    adv, returns = gae(rewards, old_values, resp if gae_mask == "response" else loss_mask, pcfg.gamma, pcfg.lam)
    if pcfg.whiten:  # over generated tokens: the blocks' values are never trained (see the module doc)
        adv = masked_whiten(adv, loss_mask)
    return {"old_logp": old_logp, "ref_logp": ref_logp, "old_values": old_values, "rewards": rewards,
            "advantages": adv, "returns": returns, "loss_mask": loss_mask, "response_mask": resp}


def _chunk(gcfg: GRPOConfig, h: torch.Tensor) -> int:
    """Tokens projected at once. The values share the backbone's pass with the log-probs, so PPO has no naive
    full-sequence path: `logprob_chunk: null` projects every masked token at once, the same memory peak."""
    return gcfg.logprob_chunk or max(h.shape[0], 1)


def ppo_step(model, critic: Critic, batch: TrajectoryBatch, scores: torch.Tensor, optimizer, gcfg: GRPOConfig,
             pcfg: PPOConfig, ref_model=None) -> dict[str, float]:
    """One PPO update on a batch of rollouts scored `scores` `[batch]` (one epoch, as the authors): the policy's
    clipped loss and the critic's clipped value loss, micro-batch by micro-batch. Returns metrics; like
    `grpo_step`, a non-finite loss or gradient norm skips the update (`skipped = 1`)."""
    device = next(model.parameters()).device
    pre = ppo_advantages(model, critic, batch, scores, gcfg, pcfg, ref_model)
    pg_cfg = dataclasses.replace(gcfg, beta=0.0, loss_agg="token-mean")  # the KL is in the reward; veRL's token mean
    n_tokens = max(int(pre["loss_mask"].sum()), 1)
    optimizer.zero_grad(set_to_none=True)
    critic.optimizer.zero_grad(set_to_none=True)
    total = {"loss": 0.0, "value_loss": 0.0, "clipped": 0.0, "value_clipped": 0.0, "entropy_sum": 0.0}
    finite = True
    model.train()
    if critic.trunk is not None:
        critic.trunk.train()
    for picked in longest_first(batch, gcfg.micro_batch_size):
        width = int(batch.attention_mask[picked].sum(1).max())
        cut = {k: v[picked][:, :width].to(device) for k, v in pre.items() if v.dim() == 2}
        ids, attn = batch.input_ids[picked][:, :width].to(device), batch.attention_mask[picked][:, :width].to(device)
        mask = cut["loss_mask"]
        h, sel = masked_hidden(model, ids, attn, mask)
        lp, entropy = project_logprobs(h, ids[:, 1:][sel], model.get_output_embeddings(), gcfg.temperature,
                                       _chunk(gcfg, h))
        logp = scatter_tokens(lp, sel)
        values = scatter_tokens(critic.head(h), sel) if critic.trunk is None else _values(critic, model, ids, attn,
                                                                                          mask)
        pg, stats = grpo_loss(logp, cut["old_logp"], None, cut["advantages"], mask, pg_cfg, n_tokens=n_tokens)
        vf, bound = value_loss(values, cut["old_values"], cut["returns"], mask, pcfg.value_clip, n_tokens)
        loss = pg + (pcfg.vf_coef if critic.trunk is None else 1.0) * vf  # a separate critic: its own parameters
        if not torch.isfinite(loss):
            finite = False
            break
        loss.backward()
        total["loss"] += pg.item()
        total["value_loss"] += vf.item()
        total["clipped"] += float(stats["clipped"])
        total["value_clipped"] += float(bound)
        total["entropy_sum"] += float(entropy.sum())
    trained = [p for p in model.parameters() if p.requires_grad]
    finite, norms = step_if_finite([(optimizer, trained), (critic.optimizer, critic.parameters())],
                                   gcfg.max_grad_norm, finite)
    gen = pre["loss_mask"].bool()
    # reported as k3, as grpo_step does (the reward's k1 can be negative on any one batch)
    kl = k3_kl(pre["old_logp"], pre["ref_logp"])[gen].mean().item() if pcfg.kl_coef and gen.any() else 0.0
    return {"loss": total["loss"] if finite else float("nan"), "kl": kl, "entropy": total["entropy_sum"] / n_tokens,
            "clip_fraction": total["clipped"] / n_tokens, "grad_norm": norms[0], "tokens_trained": float(gen.sum()),
            "skipped": 0.0 if finite else 1.0, "value_loss": total["value_loss"] if finite else float("nan"),
            "value_clip_fraction": total["value_clipped"] / n_tokens, "critic_grad_norm": norms[1],
            "value_mean": pre["old_values"][gen].mean().item() if gen.any() else 0.0,
            "explained_variance": explained_variance(pre["old_values"], pre["returns"], gen)}


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R) over the masked tokens: 1 = the critic predicts the returns, 0 = no better than their
    mean, < 0 = worse. NaN when the returns do not vary."""
    r, v = returns[mask.bool()], values[mask.bool()]
    if r.numel() < 2 or r.var() == 0:
        return float("nan")
    return float(1 - (r - v).var() / r.var())
