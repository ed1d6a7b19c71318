"""The masked GRPO loss: pinned numbers, the mask, a library oracle (TRL), chunked log-probs, the step."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_batch

from searchr1_lite.grpo import (
    GRPOConfig,
    TrajectoryBatch,
    group_advantages,
    grpo_loss,
    grpo_step,
    k3_kl,
    mixed_group_chance,
    naive_token_logprobs,
    token_logprobs,
)
from searchr1_lite.models import load_model


def test_group_advantages_pinned():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # two groups of 4
    adv = group_advantages(r, 4)
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std()  # unbiased, as torch and TRL
    torch.testing.assert_close(adv[:4], torch.tensor([0.75, -0.25, -0.25, -0.25]) / (std + 1e-6))
    assert adv[4:].tolist() == [0.0] * 4  # equal rewards: zero advantage, no NaN
    torch.testing.assert_close(group_advantages(r, 4, "none")[:4], torch.tensor([0.75, -0.25, -0.25, -0.25]))
    torch.testing.assert_close(group_advantages(r, 4, "batch"), group_advantages(r, 4, "none") / (r.std() + 1e-6))
    assert group_advantages(torch.tensor([0.5]), 1).tolist() == [0.0]


def test_group_advantages_of_groups_of_different_sizes():
    """A two-hop question's group may be larger (two_hop_group_size): each group is centred and scaled on its own."""
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])  # a group of 4, then one of 2
    first, second = torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0])
    want = torch.cat([(first - 0.5) / (first.std() + 1e-6), (second - 0.5) / (second.std() + 1e-6)])
    torch.testing.assert_close(group_advantages(r, [4, 2]), want)
    torch.testing.assert_close(group_advantages(r, [4, 2], "none"), torch.cat([first - 0.5, second - 0.5]))
    torch.testing.assert_close(group_advantages(r, [4, 2], "batch"), torch.cat([first - 0.5, second - 0.5]) /
                               (r.std() + 1e-6))
    same = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    torch.testing.assert_close(group_advantages(same, [4, 4]), group_advantages(same, 4))  # equal sizes: as before
    assert group_advantages(torch.tensor([0.5, 1.0, 0.0]), [1, 2]).tolist()[0] == 0.0  # a group of one: no NaN
    with pytest.raises(ValueError, match=r"group sizes \[4, 3\] add up to 7, not 6"):
        group_advantages(r, [4, 3])


def test_mixed_group_chance_is_the_chance_of_a_group_with_an_advantage():
    """Every group of 0/1 rewards of sizes 1-6, weighted by its probability at each solve rate: the groups that
    `group_advantages` gives a non-zero advantage add up to `mixed_group_chance`."""
    import itertools

    for size in range(1, 7):
        for rate in (0.0, 1 / 112, 0.1, 0.5, 0.9, 1.0):
            learnable = 0.0
            for rewards in itertools.product((0.0, 1.0), repeat=size):
                if group_advantages(torch.tensor(rewards), size).abs().sum() > 0:
                    right = sum(rewards)
                    learnable += rate**right * (1 - rate) ** (size - right)
            assert mixed_group_chance(rate, size) == pytest.approx(learnable, abs=1e-12), (rate, size)
    assert mixed_group_chance(1 / 112, 8) == pytest.approx(0.069, abs=1e-3)  # docs/multi-hop section 24
    with pytest.raises(ValueError, match="solve_rate must be in"):
        mixed_group_chance(1.5, 8)


def _toy():
    # 2 sequences x 4 positions; mask chooses the generated tokens
    logp = torch.log(torch.tensor([[0.5, 0.4, 0.3, 0.9], [0.2, 0.6, 0.6, 0.1]]))
    old = torch.log(torch.tensor([[0.5, 0.2, 0.3, 0.5], [0.4, 0.6, 0.3, 0.2]]))
    ref = torch.log(torch.tensor([[0.5, 0.5, 0.3, 0.9], [0.2, 0.3, 0.6, 0.4]]))
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 0]])
    adv = torch.tensor([1.0, -1.0])
    return logp, old, ref, adv, mask


def test_clipped_objective_and_k3_kl_by_hand():
    logp, old, ref, adv, mask = _toy()
    cfg = GRPOConfig(beta=0.0, clip_low=0.2, clip_high=0.2)
    # seq 0 (A=+1): ratios 0.4/0.2 = 2 -> clipped to 1.2; 0.3/0.3 = 1 -> terms -1.2, -1; mean -1.1
    # seq 1 (A=-1): ratios 0.5, 1, 2 -> min(-r, -clip(r)) = -max(r, clip r): -0.8, -1, -2 -> loss 0.8, 1, 2; mean 1.2667
    loss, stats = grpo_loss(logp, old, None, adv, mask, cfg)
    assert loss.item() == pytest.approx((-1.1 + (0.8 + 1 + 2) / 3) / 2, abs=1e-6)
    assert stats["clipped"].item() == 2  # seq 0 position 1 (r=2 > 1.2, A>0) and seq 1 position 0 (r=0.5 < 0.8, A<0)
    # k3 at seq 0 position 1: x = ref - logp = log(0.5/0.4): exp(x) - x - 1
    x = torch.log(torch.tensor(0.5 / 0.4))
    kl_cfg = GRPOConfig(beta=0.5, clip_low=0.2, clip_high=0.2)
    loss_kl, stats_kl = grpo_loss(logp, old, ref, adv, mask, kl_cfg)
    k3 = lambda r: r - torch.log(torch.tensor(r)) - 1  # noqa: E731  exp(x) - x - 1 with r = exp(x)
    kl_terms = [float(k3(0.5 / 0.4)), 0.0, 0.0, float(k3(0.3 / 0.6)), 0.0]
    assert stats_kl["kl_sum"].item() == pytest.approx(sum(kl_terms), abs=1e-6)
    seq_kl = (kl_terms[0] + kl_terms[1]) / 2 + sum(kl_terms[2:]) / 3
    assert loss_kl.item() == pytest.approx(loss.item() + 0.5 * seq_kl / 2, abs=1e-6)
    assert float(torch.exp(x) - x - 1) == pytest.approx(kl_terms[0])


def test_k3_kl_is_capped_at_10_as_the_authors_low_var_kl():
    """A token the reference finds e^30 times likelier (or 100 nats less likely) costs 10, not e^30 or 99, and sends
    no gradient; below the cap the estimate is untouched."""
    logp = torch.tensor([-30.0, -1.0, 0.0], requires_grad=True)
    ref = torch.tensor([0.0, -1.5, -100.0])
    kl = k3_kl(logp, ref)
    assert kl[0].item() == 10.0 and kl[2].item() == 10.0
    assert kl[1].item() == pytest.approx(math.exp(-0.5) + 0.5 - 1)
    kl.sum().backward()
    assert logp.grad[0].item() == 0.0 and logp.grad[2].item() == 0.0 and logp.grad[1].item() != 0.0


@pytest.mark.parametrize("agg, expected", [
    ("seq-mean-token-mean", (-2.2 / 2 + 3.8 / 3) / 2),
    ("token-mean", (-2.2 + 3.8) / 5),
    ("seq-mean-token-sum-norm", (-2.2 + 3.8) / (2 * 10)),
])
def test_aggregations_by_hand(agg, expected):
    logp, old, _, adv, mask = _toy()
    loss, _ = grpo_loss(logp, old, None, adv, mask, GRPOConfig(beta=0.0, loss_agg=agg, max_response_tokens=10))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def _trl_loss(loss_type, logp, old, ref, adv, mask, beta, eps_low, eps_high, max_len):
    """TRL's own GRPOTrainer._compute_loss, called on a stand-in trainer whose model returns our log-probs."""
    from trl import GRPOTrainer

    ident = lambda x, **kw: x  # noqa: E731  one process: gather/reduce are identities
    fake = SimpleNamespace(
        aux_loss_enabled=False, top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        importance_sampling_level="token", beta=beta, loss_type=loss_type, epsilon_low=eps_low,
        epsilon_high=eps_high, use_vllm=False, model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, max_completion_length=max_len, _entropy_bonus_enabled=False,
        _metrics={"train": defaultdict(list)},
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        accelerator=SimpleNamespace(gather=ident, reduce=ident, gather_for_metrics=ident, num_processes=1,
                                    sync_gradients=True),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
    )
    b, t = logp.shape
    inputs = {"prompt_ids": torch.zeros(b, 1, dtype=torch.long), "prompt_mask": torch.ones(b, 1, dtype=torch.long),
              "completion_ids": torch.zeros(b, t, dtype=torch.long),
              "completion_mask": torch.ones(b, t, dtype=torch.long),
              "tool_mask": mask, "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
              "num_items_in_batch": mask.sum()}
    return GRPOTrainer._compute_loss(fake, None, inputs)


@pytest.mark.parametrize("ours, trl_type", [("seq-mean-token-mean", "grpo"), ("token-mean", "dapo"),
                                            ("token-mean", "bnpo"), ("seq-mean-token-sum-norm", "dr_grpo")])
def test_loss_equals_trl_grpo_loss(ours, trl_type):
    torch.manual_seed(0)
    b, t = 6, 17
    logp = (torch.rand(b, t) * -3).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(b, t)  # off-policy enough that clipping happens on both sides
    ref = logp.detach() + 0.2 * torch.randn(b, t)
    mask = (torch.rand(b, t) > 0.4).long()
    mask[0] = 0  # a sequence with nothing generated
    adv = torch.randn(b)
    cfg = GRPOConfig(beta=0.04, clip_low=0.2, clip_high=0.28, loss_agg=ours, max_response_tokens=t)
    mine, _ = grpo_loss(logp, old, ref, adv, mask, cfg)
    theirs = _trl_loss(trl_type, logp, old, ref, adv, mask, 0.04, 0.2, 0.28, t)
    torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0)
    g_mine = torch.autograd.grad(mine, logp)[0]
    g_theirs = torch.autograd.grad(_trl_loss(trl_type, logp, old, ref, adv, mask, 0.04, 0.2, 0.28, t), logp)[0]
    torch.testing.assert_close(g_mine, g_theirs, atol=1e-7, rtol=0)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-qwen2", device="cpu")


def test_chunked_logprobs_equal_the_naive_computation(tiny):
    model, tok = tiny
    ids, attn, gen = tiny_batch(tok)
    with torch.no_grad():
        naive, naive_entropy = naive_token_logprobs(model, ids, attn, temperature=0.7)
        for chunk in (7, 512):
            mine, entropy = token_logprobs(model, ids, attn, gen, temperature=0.7, chunk=chunk)
            torch.testing.assert_close(mine[gen.bool()], naive[gen.bool()], atol=1e-5, rtol=0)
            assert (mine[~gen.bool()] == 0).all() and (entropy[gen.bool()] > 0).all()
            torch.testing.assert_close(entropy[gen.bool()], naive_entropy[gen.bool()], atol=1e-4, rtol=0)


def test_gradient_is_exactly_zero_at_masked_positions(tiny):
    """d loss / d logits is 0 wherever gen_mask == 0: retrieved text teaches nothing."""
    model, tok = tiny
    ids, attn, gen = tiny_batch(tok)
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["logits"] = output

    hook = model.lm_head.register_forward_hook(keep)
    try:
        logits_out = model(input_ids=ids, attention_mask=attn)
    finally:
        hook.remove()
    logits = captured["logits"]  # [b, s, V], the lm_head output inside the graph
    logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
    logp = torch.cat([torch.zeros_like(logp[:, :1]), logp], 1)
    loss, _ = grpo_loss(logp, logp.detach(), None, torch.tensor([1.0, -0.5, 2.0]), gen, GRPOConfig(beta=0.0))
    loss.backward()
    grad = logits.grad  # position t-1's logits predict token t
    predicts_masked = gen[:, 1:] == 0  # [b, s-1]
    assert grad[:, :-1][predicts_masked].abs().max().item() == 0.0
    assert grad[:, :-1][~predicts_masked].abs().max().item() > 0
    assert grad[:, -1].abs().max().item() == 0.0
    del logits_out


def test_a_batch_moves_whole_to_the_models_device():
    """Lesson 03 moves the batch to `model.device` before its loss by hand (on a GPU the rollout's tensors stay on
    the CPU): every tensor moves, the sampling log-probs too, and no value changes. "meta" stands in for a GPU."""
    ids, gen = torch.tensor([[5, 6, 7, 0]]), torch.tensor([[0, 1, 1, 0]])
    batch = TrajectoryBatch(ids, (ids > 0).long(), gen, logprobs=torch.tensor([[0.0, -0.5, -1.5, 0.0]]))
    moved = batch.to("meta")
    assert {t.device.type for t in (moved.input_ids, moved.attention_mask, moved.gen_mask, moved.logprobs)} == {"meta"}
    back = batch.to("cpu")
    for name in ("input_ids", "attention_mask", "gen_mask", "logprobs"):
        assert torch.equal(getattr(back, name), getattr(batch, name)), name
    assert TrajectoryBatch(ids, (ids > 0).long(), gen).to("meta").logprobs is None  # on-policy stays on-policy


def test_micro_batches_accumulate_to_the_full_batch_gradient(tiny):
    model, tok = tiny
    ids, attn, gen = (x[[2, 0, 1]] for x in tiny_batch(tok))  # the short row first: micro-batches reorder rows
    batch = TrajectoryBatch(ids, attn, gen)
    adv = torch.tensor([1.0, -1.0, 0.5])
    for agg in ("seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"):
        grads = []
        for mb in (3, 2, 1):
            opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: measure, do not move
            captured = []
            orig_step = opt.step

            def step(*a, **k):
                captured.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
                return orig_step(*a, **k)

            opt.step = step
            cfg = GRPOConfig(beta=0.0, micro_batch_size=mb, loss_agg=agg, max_grad_norm=1e9)
            metrics = grpo_step(model, batch, adv, opt, cfg)
            assert metrics["skipped"] == 0.0 and metrics["tokens_trained"] == int(gen[:, 1:].sum())
            grads.append(captured[0])
        model.zero_grad(set_to_none=True)  # the oracle: the textbook loss over the whole batch, rows in their order
        mask = gen.clone()
        mask[:, 0] = 0
        logp, _ = naive_token_logprobs(model, ids, attn)
        cfg = GRPOConfig(beta=0.0, loss_agg=agg)
        grpo_loss(logp * mask, (logp * mask).detach(), None, adv, mask, cfg)[0].backward()
        oracle = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        model.zero_grad(set_to_none=True)
        for got in grads:
            for a, b in zip(got, oracle):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_step_learns_and_a_nonfinite_loss_skips(tiny):
    _, tok = tiny
    model = load_model("tiny-qwen2", device="cpu")[0]  # a private copy: this test changes weights
    ids, attn, gen = tiny_batch(tok, seed=1)
    batch = TrajectoryBatch(ids, attn, gen)
    adv = torch.tensor([1.0, 1.0, 1.0])  # reinforce everything: the sampled tokens must get likelier
    with torch.no_grad():
        before = token_logprobs(model, ids, attn, gen)[0][gen.bool()].sum()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    m = grpo_step(model, batch, adv, opt, GRPOConfig(beta=0.0))
    with torch.no_grad():
        after = token_logprobs(model, ids, attn, gen)[0][gen.bool()].sum()
    assert after > before and m["skipped"] == 0.0 and m["grad_norm"] > 0 and m["entropy"] > 0
    weights = [p.detach().clone() for p in model.parameters()]
    bad = TrajectoryBatch(ids, attn, gen, logprobs=torch.full(ids.shape, float("nan")))
    m = grpo_step(model, bad, adv, opt, GRPOConfig(beta=0.0))
    assert m["skipped"] == 1.0 and all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))


def test_kl_to_the_reference_is_the_model_with_its_adapter_off(tiny):
    from peft import LoraConfig, get_peft_model

    _, tok = tiny
    base = load_model("tiny-qwen2", device="cpu")[0]
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    ids, attn, gen = tiny_batch(tok, seed=2)
    batch, adv = TrajectoryBatch(ids, attn, gen), torch.tensor([1.0, -1.0, 0.5])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    cfg = GRPOConfig(beta=0.1)
    first = grpo_step(model, batch, adv, opt, cfg)
    assert first["kl"] == pytest.approx(0.0, abs=1e-8)  # LoRA starts as the identity: policy == reference
    second = grpo_step(model, batch, adv, opt, cfg)
    assert second["kl"] > 1e-6 and second["skipped"] == 0.0
    with torch.no_grad(), model.disable_adapter():
        ref = token_logprobs(model, ids, attn, gen)[0]
    fresh = load_model("tiny-qwen2", device="cpu")[0]
    with torch.no_grad():
        torch.testing.assert_close(ref, token_logprobs(fresh, ids, attn, gen)[0])  # adapter off = the base model


def test_the_default_adapter_updates_the_policy_that_sampled():
    """rho = 1 on a batch's one update: the old log-probs come from the sampling pass (eval mode), and the update's
    pass (train mode) must score the same policy. LoRA dropout (0.05 before) made the two passes differ, and the
    clip cut tokens at random; the default adapter has none."""
    from searchr1_lite.models import load_policy

    torch.manual_seed(0)
    model, tok = load_policy("tiny-qwen2", lora_r=4, lora_alpha=8, device="cpu")  # LoRA's default dropout
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)  # a trained-looking adapter, so dropping its input would matter
    ids, attn, gen = tiny_batch(tok, seed=3)
    model.eval()
    with torch.no_grad():
        old, _ = token_logprobs(model, ids, attn, gen)
    batch = TrajectoryBatch(ids, attn, gen, logprobs=old)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    cfg = GRPOConfig(clip_low=0.01, clip_high=0.01)  # any drift between the passes shows as clipped tokens
    stats = grpo_step(model, batch, torch.tensor([1.0, -1.0, 1.0]), opt, cfg)
    assert stats["clip_fraction"] == 0.0 and stats["tokens_trained"] > 0


@pytest.mark.slow
def test_shared_prefix_forward_gives_the_same_logprobs_and_gradient():
    """A GRPO group's prompt runs once (batch 1) and every row attends to it: exact, gradient included."""
    from searchr1_lite.grpo import shared_prefix_length
    from searchr1_lite.models import load_policy

    torch.manual_seed(0)
    model, tok = load_policy("smollm2-135m-instruct", lora_layers=4, lora_dropout=0.0, device="cpu")
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)  # a trained-looking adapter, so the prefix depends on it
    prompt = tok("Answer the question. Question: where is the tower?").input_ids
    rows = [prompt + tok(s).input_ids for s in (" It is in Paris, near the river.", " Rome.", " I do not know it")]
    width = max(map(len, rows))
    ids = torch.full((3, width), tok.pad_token_id)
    attn, mask = torch.zeros(3, width, dtype=torch.long), torch.zeros(3, width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], attn[i, : len(r)], mask[i, len(prompt) : len(r)] = torch.tensor(r), 1, 1
    assert shared_prefix_length(ids, attn, mask) == len(prompt) - 1
    got = {}
    for share in (False, True):
        model.zero_grad()
        logp, _ = token_logprobs(model, ids, attn, mask, share_prefix=share)
        logp.sum().backward()
        got[share] = logp.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
    torch.testing.assert_close(got[True][0], got[False][0], atol=5e-5, rtol=0)
    torch.testing.assert_close(got[True][1], got[False][1], atol=1e-4 * got[False][1].abs().max().item(), rtol=0)
    assert got[False][1].abs().max() > 0


@pytest.mark.parametrize("quantization", [None, "4bit"])
def test_gradient_checkpointing_gives_the_same_step(quantization):
    """configs/qwen2.5-3b-qlora.yaml's setting: checkpointing on, micro-batch 2, rows of a group sharing their prompt
    (transformers drops every cache inside checkpointed layers, so the shared-prefix forward must not be taken)."""
    from searchr1_lite.models import load_policy

    ids, attn, gen = tiny_batch(load_model("tiny-qwen2", device="cpu")[1])
    ids[:, :10] = ids[0, :10]  # one group: the prompt (positions 0..9) is the same in every row
    batch, adv = TrajectoryBatch(ids, attn, gen), torch.tensor([1.0, -1.0, 0.5])
    got = {}
    for checkpointing in (False, True):
        model, _ = load_policy("tiny-qwen2", quantization=quantization, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                               gradient_checkpointing=checkpointing, device="cpu")
        torch.manual_seed(0)  # the same adapter in both (the first 4-bit load also builds the model: other draws)
        for name, p in model.named_parameters():
            if "lora_" in name:
                torch.nn.init.normal_(p, std=0.02)  # lora_B too: the prompt's keys and values depend on the adapter
        assert model.is_gradient_checkpointing == checkpointing
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
        captured = []
        orig_step = opt.step
        opt.step = lambda *a, **k: (captured.append([p.grad.clone() for p in model.parameters() if p.grad is not None]),
                                    orig_step(*a, **k))[1]
        model.train()
        logp, _ = token_logprobs(model, ids[:2], attn[:2], gen[:2])  # two rows: the shared-prefix path
        # beta > 0: the reference pass (no gradients, adapter off) runs in training mode under checkpointing too
        m = grpo_step(model, batch, adv, opt, GRPOConfig(beta=0.05, micro_batch_size=2, max_grad_norm=1e9))
        assert m["skipped"] == 0.0 and m["grad_norm"] > 0
        got[checkpointing] = logp.detach(), torch.cat([g.flatten() for g in captured[0]])
    torch.testing.assert_close(got[True][0], got[False][0], atol=5e-5, rtol=0)
    torch.testing.assert_close(got[True][1], got[False][1], atol=1e-4 * got[False][1].abs().max().item(), rtol=0)


def test_the_update_scores_tokens_at_the_sampling_temperature(tiny):
    """The old log-probs come from sampling at `temperature` (0.7 here); the update must score the same
    distribution, logits / temperature, or rho != 1 on the batch's one update and a tight clip cuts tokens. A batch
    whose log-probs were taken at temperature 1 is clipped: what a wrong temperature in the update looks like."""
    model, tok = tiny
    ids, attn, gen = tiny_batch(tok, seed=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: measure, do not move
    cfg = GRPOConfig(temperature=0.7, clip_low=0.01, clip_high=0.01, beta=0.0)
    adv = torch.tensor([1.0, -1.0, 1.0])
    model.eval()
    clipped = {}
    for sampled_at in (0.7, 1.0):
        with torch.no_grad():
            old, _ = token_logprobs(model, ids, attn, gen, temperature=sampled_at)
        stats = grpo_step(model, TrajectoryBatch(ids, attn, gen, logprobs=old), adv, opt, cfg)
        assert stats["tokens_trained"] > 0 and stats["skipped"] == 0.0
        clipped[sampled_at] = stats["clip_fraction"]
    assert clipped[0.7] == 0.0
    assert clipped[1.0] > 0.1  # the check can fail: tiny-qwen2's log-probs differ by temperature past the clip


def test_a_nonfinite_gradient_norm_from_a_finite_loss_skips_the_step(tiny):
    """A finite loss can still give an infinite or NaN gradient (an overflow in the backward): the step must then be
    skipped and reported so, the weights untouched, not a clipped NaN update written into every weight."""
    _, tok = tiny
    model = load_model("tiny-qwen2", device="cpu")[0]  # a private copy: a wrong step writes NaN into it
    ids, attn, gen = tiny_batch(tok, seed=5)
    weights = [p.detach().clone() for p in model.parameters()]
    victim = next(p for p in model.parameters() if p.requires_grad)
    hook = victim.register_hook(lambda g: g * float("inf"))
    try:
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        m = grpo_step(model, TrajectoryBatch(ids, attn, gen), torch.tensor([1.0, -1.0, 0.5]), opt,
                      GRPOConfig(beta=0.0))
    finally:
        hook.remove()
    assert m["skipped"] == 1.0 and not math.isfinite(m["grad_norm"]) and m["tokens_trained"] > 0
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert all(p.grad is None for p in model.parameters())  # the bad gradients are dropped, not left for the next step


def test_kl_to_a_different_reference_model_is_positive_on_the_first_step(tiny):
    """`ref_model=` is the reference when given: a policy that differs from it pays a KL from the first step (the
    adapter-off path would give 0 here, as the policy has no adapter; a dropped ref_model an error)."""
    model, tok = tiny
    ref = load_model("tiny-qwen2", device="cpu", seed=1)[0]  # other random weights
    ids, attn, gen = tiny_batch(tok, seed=6)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    m = grpo_step(model, TrajectoryBatch(ids, attn, gen), torch.tensor([1.0, -1.0, 0.5]), opt,
                  GRPOConfig(beta=0.1), ref_model=ref)
    mask = gen.clone()
    mask[:, 0] = 0
    with torch.no_grad():
        logp, ref_logp = (token_logprobs(x, ids, attn, mask)[0] for x in (model, ref))
    want = (k3_kl(logp, ref_logp) * mask).sum() / mask.sum()
    assert m["kl"] > 1e-3 and m["kl"] == pytest.approx(want.item(), rel=1e-4)


def test_grpo_defaults_are_the_papers():
    """The paper's GRPO: clip 0.2 both sides, k3 KL at beta 0.001, each sequence's token mean, group-scaled
    advantages, log-probs at temperature 1."""
    cfg = GRPOConfig()
    assert (cfg.clip_low, cfg.clip_high, cfg.beta, cfg.loss_agg, cfg.adv_scale, cfg.temperature) == \
        (0.2, 0.2, 0.001, "seq-mean-token-mean", "group", 1.0)
