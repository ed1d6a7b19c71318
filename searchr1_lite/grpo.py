"""The masked GRPO step: group advantages, per-token log-probs, the clipped objective with a KL penalty.

For a prompt sampled n times with rewards r_1..r_n, every token of trajectory i gets the advantage
    A_i = (r_i - mean(r)) / (std(r) + eps)                       (group-normalised; Dr. GRPO drops the std)
and the loss, over the tokens the policy generated (gen_mask = 1) only, is
    L = agg_t[ -min(rho_t A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) A_i) + beta * KL_t ],
    rho_t = exp(logp_t - logp_old_t),   KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1   (k3, Schulman 2020)
Retrieved passages and feedback are in the context but carry no loss: the policy is never trained to write them.

Aggregations (`loss_agg`), as TRL's `loss_type`:
    seq-mean-token-mean      mean over sequences of each sequence's token mean        (GRPO as published; "grpo")
    token-mean               mean over every generated token of the batch             (DAPO; "dapo"/"bnpo")
    seq-mean-token-sum-norm  token sum / (sequences * a fixed max length)             (Dr. GRPO; "dr_grpo")

Simplified relative to the paper: one update per batch of rollouts (on-policy: rho = 1 at the first step, as LoRA
has no dropout (models.LORA_DROPOUT); the clip only cuts where the rollout's log-probs and the update's differ:
numerics, or a policy that moved between micro-batches, which it does not: one optimizer step a batch); the
reference is the same network with its LoRA adapter switched off (or any model you pass); entropy is a metric,
never a bonus.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.checkpoint import checkpoint

from .models import cache_arg, returned_cache

LossAgg = Literal["seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"]


@dataclass
class GRPOConfig:
    clip_low: float = 0.2  # eps_low (paper: 0.2)
    clip_high: float = 0.2  # eps_high; > clip_low is DAPO's "clip higher"
    beta: float = 0.001  # KL coefficient (paper: 0.001, k3 estimator)
    loss_agg: LossAgg = "seq-mean-token-mean"
    max_response_tokens: int = 1024  # the constant of seq-mean-token-sum-norm (a run sets it: TrainConfig.grpo_config)
    adv_scale: Literal["group", "batch", "none"] = "group"  # std used to scale advantages; "none" = Dr. GRPO
    adv_eps: float = 1e-6
    micro_batch_size: int = 4  # trajectories per forward/backward; gradients accumulate over the batch
    logprob_chunk: int | None = 512  # tokens whose logits exist at once (the vocabulary makes logits the memory
    # peak); None = the naive full [batch, seq, vocab] float32 log-softmax (for comparison; PPO: all tokens at once)
    temperature: float = 1.0  # the sampling temperature: log-probs are of logits / temperature, as sampled
    max_grad_norm: float = 1.0


@dataclass
class TrajectoryBatch:
    """Right-padded tensors for the loss, each [batch, seq] (from `RolloutResult.tensors`)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    gen_mask: torch.Tensor  # 1 = sampled by the policy: the only tokens with a loss
    logprobs: torch.Tensor | None = None  # sampling log-probs (the "old" policy); None = on-policy

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device) -> TrajectoryBatch:
        """The same batch on `device` (where the model is: a lesson's loss by hand needs both in one place)."""
        lp = None if self.logprobs is None else self.logprobs.to(device)
        return TrajectoryBatch(self.input_ids.to(device), self.attention_mask.to(device), self.gen_mask.to(device), lp)

    def rows(self, idx: slice | torch.Tensor) -> TrajectoryBatch:
        """These rows, cut to the longest one's length (the rest of the width is padding for all of them)."""
        attn = self.attention_mask[idx]
        width = int(attn.sum(1).max()) if attn.numel() else 0  # right-padded: a row's length is its mask's sum
        lp = None if self.logprobs is None else self.logprobs[idx][:, :width]
        return TrajectoryBatch(self.input_ids[idx][:, :width], attn[:, :width], self.gen_mask[idx][:, :width], lp)


def group_advantages(rewards: torch.Tensor, group_size: int | Sequence[int], scale: str = "group",
                     eps: float = 1e-6) -> torch.Tensor:
    """Advantages `[n]` for rewards `[n]` laid out group after group. Equal rewards in a group give 0, never NaN.
    `group_size` may list each group's size, in order, where they differ (`OptimConfig.two_hop_group_size`)."""
    if not isinstance(group_size, int):
        if sum(group_size) != rewards.numel():
            raise ValueError(f"group sizes {list(group_size)} add up to {sum(group_size)}, not {rewards.numel()}")
        per_group = "none" if scale == "batch" else scale  # the batch's std, below, not each group's
        out = torch.cat([group_advantages(g, len(g), per_group, eps) for g in rewards.split(list(group_size))])
        return out / (rewards.float().std() + eps) if scale == "batch" and rewards.numel() > 1 else out
    r = rewards.float().view(-1, group_size)  # [groups, group_size]
    centred = r - r.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (r.std(dim=1, keepdim=True) + eps) if group_size > 1 else centred
    elif scale == "batch":
        centred = centred / (rewards.float().std() + eps) if rewards.numel() > 1 else centred
    elif scale != "none":
        raise ValueError(f"adv_scale must be group, batch or none, not {scale!r}")
    return centred.view(-1)


def mixed_group_chance(solve_rate: float, group_size: int) -> float:
    """The chance that a group of `group_size` samples of a question, each right with probability `solve_rate`, holds
    both a right and a wrong answer. Only such a group has non-zero advantages (`group_advantages`), so this is how
    often GRPO gets anything to learn from the question: a question the policy never (or always) answers right
    teaches it nothing, however long it trains."""
    if not 0.0 <= solve_rate <= 1.0 or group_size < 1:
        raise ValueError(f"solve_rate must be in [0, 1] and group_size >= 1, not {solve_rate} and {group_size}")
    return 1.0 - solve_rate**group_size - (1.0 - solve_rate) ** group_size


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || ref) estimate, same shape as the inputs: e^(ref - logp) - (ref - logp) - 1 (k3, Schulman
    2020): unbiased for tokens sampled from pi, never negative, 0 where the two agree. Capped at 10, as the authors'
    `low_var_kl`: a token far from the reference (e^delta overflows) adds a bounded penalty and no gradient."""
    delta = ref_logp - logp
    return (torch.exp(delta) - delta - 1).clamp(max=10.0)


def _token_logps_entropy(hidden: torch.Tensor, targets: torch.Tensor, lm_head, temperature: float):
    logits = lm_head(hidden).float() / temperature  # [chunk, vocab]
    lse = torch.logsumexp(logits, dim=-1)  # [chunk]
    logp = logits.gather(-1, targets[:, None])[:, 0] - lse
    entropy = lse - (torch.softmax(logits, -1) * logits).sum(-1)
    return logp, entropy


def shared_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, mask: torch.Tensor) -> int:
    """Tokens every row starts with, stopping before any row's first loss position (so no prediction needs the
    prefix's own hidden states). A GRPO group shares its whole prompt; the instruction is shared by all groups."""
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(0) & attention_mask.bool().all(0)  # [s]
    n = int(same.long().cumprod(0).sum())
    first_loss = [int(r.nonzero()[0]) for r in mask if r.any()]
    return max(0, min([n, *[f - 1 for f in first_loss]]))


def _backbone(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix: int) -> torch.Tensor:
    """Hidden states `[b, s - prefix, h]` of positions prefix.. ; the first `prefix` tokens, the same in every row,
    run once at batch size 1 and every row attends to that one copy (the gradient sums over rows, so it is exact)."""
    decoder = model.get_decoder()
    if prefix == 0:
        return decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    from transformers import DynamicCache

    rows = input_ids.shape[0]
    cache = returned_cache(decoder(input_ids=input_ids[:1, :prefix], use_cache=True))
    expanded = DynamicCache()
    for i, layer in enumerate(cache.layers):
        expanded.update(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1), i)
    positions = torch.arange(prefix, input_ids.shape[1], device=input_ids.device).expand(rows, -1)
    return decoder(input_ids=input_ids[:, prefix:], attention_mask=attention_mask, position_ids=positions,
                   use_cache=True, **cache_arg(decoder, expanded)).last_hidden_state


def checkpointing_now(model) -> bool:
    """Will the next forward run under gradient checkpointing? transformers then drops every KV cache inside the
    checkpointed layers (a replayed layer must not append to a cache twice), so no prefix can be shared. Without
    gradients (the KL reference pass) transformers 5 keeps the cache, but 4.x drops it in training mode all the
    same, so grad mode is not consulted."""
    flag = getattr(model, "is_activation_checkpointing", None)  # its name in recent transformers 5 (5.25)
    if flag is None:
        flag = getattr(model, "is_gradient_checkpointing", False)  # before (deprecated there, removed in 6)
    return model.training and bool(flag)


def masked_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask: torch.Tensor,
                  share_prefix: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The last hidden state that predicts each token where `mask` is 1, `[n, h]` (row-major order), and where
    those tokens are, `sel` `[batch, seq - 1]` (a token at t is predicted from the hidden state at t - 1).

    The backbone runs once (a prefix shared by all rows runs once, not once per row: `share_prefix`, except under
    gradient checkpointing, which cannot keep a cache: there every row runs whole). What the hidden states feed (the
    vocabulary projection, a value head) is the caller's.
    """
    share_prefix = share_prefix and not checkpointing_now(model)
    prefix = shared_prefix_length(input_ids, attention_mask, mask) if share_prefix else 0
    hidden = _backbone(model, input_ids, attention_mask, prefix)  # [b, s - prefix, h]
    sel = mask[:, 1:].bool()  # [b, s-1]
    return hidden[:, :-1][sel[:, prefix:]], sel


def project_logprobs(h: torch.Tensor, targets: torch.Tensor, lm_head, temperature: float = 1.0,
                     chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target | h) and the entropy there, `[n]` each, `chunk` rows at a time under activation checkpointing,
    so float32 logits never exist for more than `chunk` tokens, forward or backward."""
    parts = []
    for start in range(0, h.shape[0], chunk):
        args = (h[start : start + chunk], targets[start : start + chunk], lm_head, temperature)
        parts.append(checkpoint(_token_logps_entropy, *args, use_reentrant=False) if torch.is_grad_enabled()
                     else _token_logps_entropy(*args))
    if not parts:
        empty = h.new_zeros(0, dtype=torch.float32)
        return empty, empty
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]).detach()


def scatter_tokens(values: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
    """Per-token values `[n]` back to `[batch, seq]` at the positions `sel` names (0 elsewhere, and at position 0)."""
    out = torch.zeros((sel.shape[0], sel.shape[1] + 1), dtype=torch.float32, device=sel.device)
    out[:, 1:][sel] = values.float()
    return out


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask: torch.Tensor,
                   temperature: float = 1.0, chunk: int = 512,
                   share_prefix: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(input_ids[t] | input_ids[<t]) and the entropy there, `[batch, seq]`, at positions where `mask` is 1.

    The backbone runs once (`masked_hidden`); the vocabulary projection runs only on masked positions, `chunk`
    tokens at a time (`project_logprobs`). Positions with mask 0 (and position 0, which has no prediction) are 0.
    """
    h, sel = masked_hidden(model, input_ids, attention_mask, mask, share_prefix)
    logp, entropy = project_logprobs(h, input_ids[:, 1:][sel], model.get_output_embeddings(), temperature, chunk)
    return scatter_tokens(logp, sel), scatter_tokens(entropy, sel)


def naive_token_logprobs(model, input_ids, attention_mask,
                         temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook version: a full float32 log-softmax over `[batch, seq, vocab]`. For tests and the benchmark."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float() / temperature  # [b, s, V]
    logp_all = torch.log_softmax(logits[:, :-1], dim=-1)  # [b, s-1, V]
    logp = logp_all.gather(-1, input_ids[:, 1:, None])[..., 0]  # [b, s-1]
    entropy = -(logp_all.exp() * logp_all).sum(-1).detach()  # [b, s-1]
    pad = torch.zeros_like(logp[:, :1])
    return torch.cat([pad, logp], dim=1), torch.cat([pad, entropy], dim=1)  # [b, s] each


def grpo_loss(logp, old_logp, ref_logp, advantages, mask, cfg: GRPOConfig, n_seqs: int | None = None,
              n_tokens: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The masked clipped objective on per-token tensors `[batch, seq]`; advantages `[batch]` (one a sequence, GRPO)
    or `[batch, seq]` (one a token, PPO).

    `n_seqs` / `n_tokens` are the whole batch's counts when this is one micro-batch of it, so that micro-batch
    losses add up to exactly the full-batch loss (and their gradients to the full-batch gradient).
    """
    m = mask.float()  # [b, s]
    a = advantages.float()
    a = a[:, None] if a.dim() == 1 else a  # [b, 1] or [b, s]
    ratio = torch.exp(logp - old_logp)  # [b, s]
    clipped = torch.clamp(ratio, 1 - cfg.clip_low, 1 + cfg.clip_high)
    per_token = -torch.min(ratio * a, clipped * a)
    kl = k3_kl(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if cfg.beta:
        per_token = per_token + cfg.beta * kl
    n_seqs = n_seqs or mask.shape[0]
    n_tokens = n_tokens or int(m.sum().item())
    if cfg.loss_agg == "seq-mean-token-mean":
        loss = ((per_token * m).sum(1) / m.sum(1).clamp(min=1)).sum() / n_seqs
    elif cfg.loss_agg == "token-mean":
        loss = (per_token * m).sum() / max(n_tokens, 1)
    elif cfg.loss_agg == "seq-mean-token-sum-norm":
        loss = (per_token * m).sum() / (n_seqs * cfg.max_response_tokens)
    else:
        raise ValueError(f"unknown loss_agg {cfg.loss_agg!r}")
    is_clipped = ((ratio < 1 - cfg.clip_low) & (a < 0)) | ((ratio > 1 + cfg.clip_high) & (a > 0))
    stats = {"kl_sum": (kl * m).sum().detach(), "clipped": (is_clipped.float() * m).sum().detach(),
             "tokens": m.sum().detach()}
    return loss, stats


def _logprobs(model, ids, attn, mask, cfg: GRPOConfig):
    if cfg.logprob_chunk:
        return token_logprobs(model, ids, attn, mask, cfg.temperature, cfg.logprob_chunk)
    logp, entropy = naive_token_logprobs(model, ids, attn, cfg.temperature)
    return logp * mask, entropy * mask


def _adapter_off(model):
    """Context in which `model` is the reference policy: its LoRA adapter disabled (peft), else unavailable."""
    if hasattr(model, "disable_adapter"):
        return model.disable_adapter()
    raise ValueError("a KL term (grpo.beta or ppo.kl_coef > 0) needs a reference: a peft model (adapter off = "
                     "reference) or `ref_model=`")


def longest_first(batch: TrajectoryBatch, size: int) -> Iterator[torch.Tensor]:
    """The batch's row indices in micro-batches of `size`, longest rows first, so that rows of like length are padded
    together (the loss is a sum over rows: the order changes nothing but rounding)."""
    by_length = torch.argsort(batch.attention_mask.sum(1), descending=True, stable=True)  # [batch]
    for start in range(0, len(batch), size):
        yield by_length[start : start + size]


def step_if_finite(updates: list[tuple[torch.optim.Optimizer, Iterable]], max_grad_norm: float,
                   finite: bool = True) -> tuple[bool, list[float]]:
    """Clip each (optimizer, parameters) pair's gradient to `max_grad_norm` and step every optimizer, only if the
    loss was finite (`finite`) and every gradient norm is: one NaN would otherwise be written into every weight.
    The gradients are dropped either way. Returns (stepped, the norms: NaN where none was measured)."""
    norms = [float("nan")] * len(updates)
    if finite:
        norms = [float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm)) for _, params in updates]
        finite = all(map(math.isfinite, norms))
    for optimizer, _ in updates:
        if finite:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return finite, norms


def grpo_step(model, batch: TrajectoryBatch, advantages: torch.Tensor, optimizer, cfg: GRPOConfig,
              ref_model=None) -> dict[str, float]:
    """One optimizer step over the batch in micro-batches (gradient accumulation). Returns metrics.

    Micro-batches take the rows longest first (`longest_first`). A non-finite loss or gradient norm skips the update
    (gradients are dropped) and says so: `skipped = 1`.
    """
    device = next(model.parameters()).device
    n_seqs, n_tokens = len(batch), int(batch.gen_mask[:, 1:].sum().item())
    optimizer.zero_grad(set_to_none=True)
    total = {"loss": 0.0, "kl_sum": 0.0, "clipped": 0.0, "tokens": 0.0, "entropy_sum": 0.0}
    finite = True
    model.train()
    for picked in longest_first(batch, cfg.micro_batch_size):
        mb = batch.rows(picked)
        ids, attn = mb.input_ids.to(device), mb.attention_mask.to(device)
        mask = mb.gen_mask.to(device).clone()
        mask[:, 0] = 0  # the first token has no prediction
        logp, entropy = _logprobs(model, ids, attn, mask, cfg)
        old = mb.logprobs.to(device) if mb.logprobs is not None else logp.detach()
        ref = None
        if cfg.beta:
            with torch.no_grad(), (nullcontext() if ref_model is not None else _adapter_off(model)):
                ref, _ = _logprobs(ref_model or model, ids, attn, mask, cfg)
        loss, stats = grpo_loss(logp, old, ref, advantages[picked].to(device), mask,
                                cfg, n_seqs=n_seqs, n_tokens=n_tokens)
        if not torch.isfinite(loss):
            finite = False
            break
        loss.backward()
        total["loss"] += loss.item()
        total["entropy_sum"] += float((entropy * mask).sum())
        for k in ("kl_sum", "clipped", "tokens"):
            total[k] += float(stats[k])
    finite, (grad_norm,) = step_if_finite([(optimizer, model.parameters())], cfg.max_grad_norm, finite)
    tokens = max(total["tokens"], 1.0)
    return {"loss": total["loss"] if finite else float("nan"), "kl": total["kl_sum"] / tokens,
            "entropy": total["entropy_sum"] / tokens, "clip_fraction": total["clipped"] / tokens,
            "grad_norm": grad_norm, "tokens_trained": total["tokens"], "skipped": 0.0 if finite else 1.0}
