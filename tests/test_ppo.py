"""PPO: GAE by hand through a retrieved block, the authors' semantics wherever a block sits, whitening, the clipped
value loss, no gradient from retrieved tokens (policy or critic), and a step that learns."""

import copy
import math
import random
from unittest import mock

import pytest
import torch
from conftest import tiny_batch

import searchr1_lite.ppo as ppo
from searchr1_lite.grpo import GRPOConfig, TrajectoryBatch, token_logprobs
from searchr1_lite.models import load_model
from searchr1_lite.ppo import (
    PPOConfig,
    ValueHead,
    gae,
    make_critic,
    masked_whiten,
    ppo_advantages,
    ppo_step,
    response_mask,
    token_rewards,
    value_loss,
)

# One trajectory: position 0 prompt, 1 generated, 2-3 a retrieved block, 4 generated (the answer), 5 padding.
GEN = torch.tensor([[0, 1, 0, 0, 1, 0]])
ATTN = torch.tensor([[1, 1, 1, 1, 1, 0]])
VALUES = torch.tensor([[9.0, 0.5, 0.2, 0.3, 0.6, 9.0]])  # 9 where nothing may read them


def test_rewards_sit_on_the_last_response_token_with_the_kl_on_generated_ones():
    old = torch.tensor([[0.0, -1.0, -2.0, -2.0, -0.5, 0.0]])
    ref = torch.tensor([[0.0, -1.5, -9.0, -9.0, -0.5, 0.0]])
    resp = response_mask(GEN, ATTN)
    assert resp.tolist() == [[0, 1, 1, 1, 1, 0]]
    r = token_rewards(torch.tensor([1.0]), old, ref, GEN, resp, kl_coef=0.2)
    # position 1 pays 0.2 * (-1 - -1.5) = 0.1; the block pays nothing however far apart its log-probs are
    torch.testing.assert_close(r, torch.tensor([[0.0, -0.1, 0.0, 0.0, 1.0, 0.0]]))
    ends_in_a_block = response_mask(torch.tensor([[0, 1, 1, 0, 0]]), torch.tensor([[1, 1, 1, 1, 1]]))
    r = token_rewards(torch.tensor([1.0]), old[:, :5], None, torch.tensor([[0, 1, 1, 0, 0]]), ends_in_a_block, 0.2)
    assert r.tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0]]  # an empty last generation: the score lands on the block's end


def test_gae_by_hand_through_a_retrieved_block():
    resp = response_mask(GEN, ATTN)
    rewards = torch.tensor([[0.0, -0.1, 0.0, 0.0, 1.0, 0.0]])
    # gamma = lam = 1: delta_t = r_t + V_t+1 - V_t -> 0.4 (t=4), 0.3, 0.1, -0.4; A_t sums them backwards
    adv, ret = gae(rewards, VALUES, resp, 1.0, 1.0)
    torch.testing.assert_close(adv, torch.tensor([[0.0, 0.4, 0.8, 0.7, 0.4, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[0.0, 0.9, 1.0, 1.0, 1.0, 0.0]]))  # the reward-to-go
    # gamma = lam = 0.5: delta 0.4, 0.5*0.6 - 0.3 = 0, 0.5*0.3 - 0.2 = -0.05, -0.1 + 0.5*0.2 - 0.5 = -0.5;
    # A_t = delta_t + 0.25 A_t+1 -> 0.4, 0.1, -0.025, -0.50625
    adv, _ = gae(rewards, VALUES, resp, 0.5, 0.5)
    torch.testing.assert_close(adv, torch.tensor([[0.0, -0.50625, -0.025, 0.1, 0.4, 0.0]]))
    # the block as one transition (gen_mask): position 1 looks straight at position 4:
    # delta_1 = -0.1 + 0.5*0.6 - 0.5 = -0.3, A_1 = -0.3 + 0.25*0.4 = -0.2
    adv, _ = gae(rewards, VALUES, GEN, 0.5, 0.5)
    torch.testing.assert_close(adv, torch.tensor([[0.0, -0.2, 0.0, 0.0, 0.4, 0.0]]))


def _authors_gae(rewards, values, attention, start, gamma, lam):
    """The authors' semantics, written from their description (not their code), on the response columns
    `start:` of right-padded rows: the critic's values are kept under the attention mask shifted by one (so the
    first response token is valued from the last prompt token, and one slot past the end keeps its value), and the
    recursion runs over every response column, padding included. Their whitening is left out: see the next test."""
    r, shifted = rewards[:, start:], attention[:, start - 1 : -1]
    v = values[:, start:] * shifted
    adv = torch.zeros_like(r)
    last = torch.zeros(r.shape[0])
    for t in reversed(range(r.shape[1])):
        nxt = v[:, t + 1] if t + 1 < r.shape[1] else torch.zeros(r.shape[0])
        last = r[:, t] + gamma * nxt - v[:, t] + gamma * lam * last
        adv[:, t] = last
    return adv


def _random_response(rng: random.Random, length: int):
    """[generated][block][generated]...: blocks anywhere after the first token, back to back with the end or not."""
    gen, t = [], 0
    while t < length:
        run = min(rng.randint(1, 4), length - t)
        gen += [1 if (len(gen) == 0 or rng.random() < 0.5) else 0] * run
        t += run
    return gen


def test_generated_tokens_get_the_authors_advantages_wherever_the_blocks_sit():
    """With the authors' gamma = lam = 1, our GAE over the response mask gives their advantages on every generated
    token, for blocks in the middle, back to back, or at the very end; and the values inside a block change no
    generated token's advantage (whitened over generated tokens, as ppo_advantages does, neither). With lam < 1 they
    would: there the blocks' values leak in."""
    rng = random.Random(0)
    with_blocks = with_lam_checked = 0  # the layouts the two branches below judged: counted, so that both ran
    for trial in range(40):
        b, s = 3, 14
        resp_len = [rng.randint(3, s - 2) for _ in range(b)]
        gen, attn = torch.zeros(b, s, dtype=torch.long), torch.zeros(b, s, dtype=torch.long)
        for i, n in enumerate(resp_len):
            attn[i, : 2 + n] = 1
            gen[i, 2 : 2 + n] = torch.tensor(_random_response(rng, n))
        resp = response_mask(gen, attn)
        old, ref = torch.randn(b, s), torch.randn(b, s)
        rewards = token_rewards(torch.tensor([1.0, 0.0, 1.0]), old, ref, gen, resp, 0.1)
        values = torch.randn(b, s)
        ours = gae(rewards, values, resp, 1.0, 1.0)[0]
        theirs = _authors_gae(rewards, values, attn, 2, 1.0, 1.0)  # every response starts at column 2
        g = gen.bool()
        torch.testing.assert_close(ours[:, 2:][g[:, 2:]], theirs[g[:, 2:]], atol=1e-5, rtol=1e-5)
        blocks = (resp == 1) & (gen == 0)
        if blocks.any():
            with_blocks += 1
            other = values + 5.0 * blocks.float() * torch.randn(b, s)  # the blocks' values, and only theirs, change
            torch.testing.assert_close(gae(rewards, other, resp, 1.0, 1.0)[0][g], gae(rewards, values, resp)[0][g])
            whitened = [masked_whiten(gae(rewards, v, resp)[0], gen)[g] for v in (values, other)]
            torch.testing.assert_close(*whitened)
            before_block = g & torch.roll(blocks, -1, dims=1)
            if before_block.any() and trial % 2 == 0:
                with_lam_checked += 1
                moved = gae(rewards, other, resp, 1.0, 0.9)[0][before_block]
                assert not torch.allclose(moved, gae(rewards, values, resp, 1.0, 0.9)[0][before_block])
    assert with_blocks >= 30 and with_lam_checked >= 15, (with_blocks, with_lam_checked)  # 38 and 19 of 40, 20


def test_whitening_is_over_the_masked_entries_of_the_whole_batch():
    x = torch.tensor([[5.0, 1.0, 2.0, 3.0], [7.0, 4.0, 0.0, 9.0]])
    m = torch.tensor([[0, 1, 1, 1], [0, 1, 0, 0]])
    picked = torch.tensor([1.0, 2.0, 3.0, 4.0])  # mean 2.5, unbiased std sqrt(5/3)
    want = (picked - 2.5) / (5 / 3) ** 0.5
    got = masked_whiten(x, m)
    torch.testing.assert_close(got[m.bool()], want)
    assert (got[~m.bool()] == 0).all()


def test_value_loss_clips_by_hand():
    old = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    v = torch.tensor([[0.0, 1.0, 0.8, 3.0]])
    ret = torch.tensor([[0.0, 2.0, 0.0, 5.0]])
    m = torch.tensor([[0, 1, 1, 0]])
    # position 1: unclipped (1-2)^2 = 1, clipped to 0.5: (0.5-2)^2 = 2.25 -> max 2.25 (the clip binds)
    # position 2: (0.8-0)^2 = 0.64 either way (within 0.5 of V_old) -> 0.64; position 3 is masked out
    loss, bound = value_loss(v, old, ret, m, clip=0.5)
    assert loss.item() == pytest.approx(0.5 * (2.25 + 0.64) / 2)
    assert bound.item() == 1


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-qwen2", device="cpu")


def _batch(tok, seed=0):
    return TrajectoryBatch(*tiny_batch(tok, seed))


def _last_hidden_grad(model, run):
    """d loss / d (the trunk's last hidden state), `[b, s, h]`: what each position's prediction and value sent back."""
    captured = {}

    def keep(module, inputs, output):
        if output.requires_grad:  # the no-grad passes (old log-probs, old values) are not what is checked
            output.retain_grad()
            captured.setdefault("h", []).append(output)

    hook = model.get_decoder().norm.register_forward_hook(keep)
    try:
        run()
    finally:
        hook.remove()
    with_grad = [h for h in captured.get("h", []) if h.grad is not None]
    assert len(with_grad) == 1, "one backward pass through this trunk"
    return with_grad[0].grad


@pytest.mark.parametrize("critic_kind", ["shared", "separate"])
def test_retrieved_tokens_send_no_gradient_to_the_policy_or_the_critic(tiny, critic_kind):
    _, tok = tiny
    policy = load_model("tiny-qwen2", device="cpu")[0]
    batch = _batch(tok)
    pcfg = PPOConfig(critic=critic_kind, kl_coef=0.0)
    critic = make_critic(policy, pcfg, load_trunk=lambda: load_model("tiny-qwen2", device="cpu", seed=1)[0])
    torch.nn.init.normal_(critic.head.score.weight, std=1.0)  # a head that has learned something: it sends gradient
    gcfg = GRPOConfig(micro_batch_size=3, max_grad_norm=1e9)
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)
    trunk = critic.trunk or policy
    if critic_kind == "separate":  # two trunks, one hook each: the policy's and the critic's
        captured = {}

        def run_with_critic_hook():
            captured["critic"] = _last_hidden_grad(critic.trunk, lambda: ppo_step(
                policy, critic, batch, torch.tensor([1.0, 0.0, 1.0]), opt, gcfg, pcfg))

        grads = {"policy": _last_hidden_grad(policy, run_with_critic_hook), **captured}
    else:
        grads = {"policy and critic": _last_hidden_grad(trunk, lambda: ppo_step(
            policy, critic, batch, torch.tensor([1.0, 0.0, 1.0]), opt, gcfg, pcfg))}
    predicts = batch.gen_mask[:, 1:].bool()  # position t-1 predicts (and values the state before) token t
    for name, g in grads.items():
        size = g[:, :-1].norm(dim=-1)  # [b, s-1]
        assert size[~predicts].max().item() == 0.0, f"{name}: gradient from a retrieved, prompt or pad token"
        assert (size[predicts] > 0).all(), f"{name}: every generated token sends gradient"


def test_a_shared_trunk_and_a_separate_critic_value_the_same_inputs():
    """The same head on the same weights gives the same old values whichever way the critic is built."""
    model, tok = load_model("tiny-qwen2", device="cpu")
    batch = _batch(tok)
    shared = make_critic(model, PPOConfig())
    separate = make_critic(model, PPOConfig(critic="separate"), load_trunk=lambda: model)
    for c in (shared, separate):
        torch.nn.init.constant_(c.head.score.weight, 0.01)
    args = (batch, torch.tensor([1.0, 0.0, 1.0]), GRPOConfig(micro_batch_size=2), PPOConfig(kl_coef=0.0))
    a = ppo_advantages(model, shared, *args)
    b = ppo_advantages(model, separate, *args)
    torch.testing.assert_close(a["old_values"], b["old_values"])
    resp, gen = a["response_mask"].bool(), a["loss_mask"].bool()
    assert (a["old_values"][resp] != 0).all() and (a["old_values"][~resp] == 0).all()
    adv = a["advantages"]  # whitened over the generated tokens of the batch
    assert abs(adv[gen].mean().item()) < 1e-5 and adv[gen].std().item() == pytest.approx(1.0, abs=1e-4)


def test_a_separate_critic_values_without_dropout_after_a_step(tiny):
    """The baseline's values come from the critic's trunk in eval mode, as the old log-probs from the policy's: a
    `ppo_step` leaves the trunk training, and with LoRA dropout two passes would value the same tokens apart."""
    from searchr1_lite.models import load_policy

    model, tok = tiny
    trunk, _ = load_policy("tiny-qwen2", lora_r=4, lora_alpha=8, lora_dropout=0.5, device="cpu")
    for name, p in trunk.named_parameters():
        if "lora_B" in name:  # an adapter that has learned something, so that dropping its input matters
            torch.nn.init.normal_(p, std=0.5)
    critic = make_critic(model, PPOConfig(critic="separate"), load_trunk=lambda: trunk)
    torch.nn.init.constant_(critic.head.score.weight, 0.1)
    trunk.train()  # as ppo_step leaves it
    args = (_batch(tok), torch.tensor([1.0, 0.0, 1.0]), GRPOConfig(micro_batch_size=3), PPOConfig(kl_coef=0.0))
    first, second = (ppo_advantages(model, critic, *args)["old_values"] for _ in range(2))
    torch.testing.assert_close(first, second)
    assert first.abs().sum() > 0


def test_logprob_chunk_null_projects_all_tokens_at_once_with_the_same_advantages(tiny):
    """`logprob_chunk: null` under PPO (whose values share the log-probs' backbone pass): every token at once, the
    same numbers as chunks of 3 (it used to become 512 without a word); an unknown gae_mask is an error."""
    model, tok = tiny
    batch, scores = _batch(tok), torch.tensor([1.0, 0.0, 1.0])
    critic = make_critic(model, PPOConfig())
    seen = []
    real = ppo.project_logprobs

    def spy(h, *args):
        seen.append((h.shape[0], args[-1]))
        return real(h, *args)

    out = {}
    for chunk in (3, None):
        seen.clear()
        with mock.patch.object(ppo, "project_logprobs", spy):
            out[chunk] = ppo_advantages(model, critic, batch, scores, GRPOConfig(logprob_chunk=chunk), PPOConfig(),
                                        ref_model=model)  # a reference, so that its log-probs are projected too
        assert all(c == (chunk or n) for n, c in seen) and any(n > 3 for n, _ in seen)
    for key in ("old_logp", "ref_logp", "advantages"):
        torch.testing.assert_close(out[3][key], out[None][key])
    with pytest.raises(ValueError, match="gae_mask must be 'response' or 'generated'"):
        ppo_advantages(model, critic, batch, scores, GRPOConfig(), PPOConfig(), model, gae_mask="generatd")


def test_ppo_steps_learn_the_rewarded_tokens_and_the_critic_learns_the_returns(tiny):
    model, tok = load_model("tiny-qwen2", device="cpu")
    ref = copy.deepcopy(model).requires_grad_(False)  # the KL's reference: the policy before any update
    batch = _batch(tok, seed=1)
    scores = torch.tensor([1.0, 0.0, 0.0])  # row 0 right, rows 1 and 2 wrong
    pcfg = PPOConfig(critic_lr=3e-2)
    critic = make_critic(model, pcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gcfg = GRPOConfig(micro_batch_size=2)
    g = batch.gen_mask.bool()

    def row_logp():
        pre = ppo_advantages(model, critic, batch, scores, gcfg, pcfg, ref)
        return [pre["old_logp"][i][g[i]].sum().item() for i in range(3)]

    before = row_logp()
    first = ppo_step(model, critic, batch, scores, opt, gcfg, pcfg, ref)
    for _ in range(5):
        last = ppo_step(model, critic, batch, scores, opt, gcfg, pcfg, ref)
    after = row_logp()
    assert after[0] > before[0] and after[1] < before[1]  # the right answer likelier, a wrong one less likely
    assert first["value_mean"] == 0.0 and last["value_loss"] < first["value_loss"]  # a zero head, then learning
    assert last["explained_variance"] > first["explained_variance"]
    assert first["kl"] == 0.0 and last["kl"] > 0  # the policy moved away from its reference
    assert first["skipped"] == last["skipped"] == 0.0 and first["tokens_trained"] == int(g[:, 1:].sum())


def test_value_head_starts_at_zero_in_float32():
    head = ValueHead(8)
    out = head(torch.randn(2, 5, 8, dtype=torch.bfloat16))
    assert out.dtype == torch.float32 and out.shape == (2, 5) and (out == 0).all()


def test_the_update_scores_tokens_at_the_sampling_temperature(tiny):
    """The old log-probs (recomputed before the update, at `grpo.temperature`, as sampled) and the update's must be
    of one distribution, logits / temperature: on the batch's one update rho = 1, and a tight clip cuts nothing."""
    model, tok = tiny
    critic = make_critic(model, PPOConfig(kl_coef=0.0))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: measure, do not move
    gcfg = GRPOConfig(temperature=0.7, clip_low=0.01, clip_high=0.01, micro_batch_size=2)
    batch, scores = _batch(tok, seed=4), torch.tensor([1.0, 0.0, 1.0])
    # the old log-probs are the sampling distribution's, logits / 0.7, and not the raw logits' (so that a
    # temperature dropped from both the old log-probs and the update cannot pass as rho = 1)
    old = ppo_advantages(model, critic, batch, scores, gcfg, PPOConfig(kl_coef=0.0))["old_logp"]
    mask = batch.gen_mask.clone()
    mask[:, 0] = 0
    at = {t: token_logprobs(model, batch.input_ids, batch.attention_mask, mask, temperature=t)[0] for t in (0.7, 1.0)}
    g = mask.bool()
    torch.testing.assert_close(old[g], at[0.7][g], atol=1e-5, rtol=0)
    assert (old[g] - at[1.0][g]).abs().max() > 1e-2
    stats = ppo_step(model, critic, batch, scores, opt, gcfg, PPOConfig(kl_coef=0.0))
    assert stats["clip_fraction"] == 0.0 and stats["tokens_trained"] > 0 and stats["skipped"] == 0.0


def test_the_policy_loss_is_the_token_mean_over_the_whole_batch(tiny):
    """veRL's policy loss: one token mean over every generated token of the batch, whatever `grpo.loss_agg` says and
    however the batch is cut into micro-batches. On-policy (rho = 1) with advantages whitened over those tokens, the
    loss is -mean(A) = 0, and its gradient that of -sum_t A_t log p_t / N (the oracle: the textbook full-batch
    log-softmax). A sequence mean of token means, or a token mean per micro-batch, gives neither."""
    from searchr1_lite.grpo import naive_token_logprobs

    model, tok = tiny
    batch, scores = _batch(tok, seed=2), torch.tensor([1.0, 0.0, 1.0])
    batch.gen_mask[2, 25:] = 0  # rows of 13, 13 and 8 generated tokens: a sequence mean weighs row 2's more
    pcfg = PPOConfig(kl_coef=0.0, vf_coef=0.0)  # the policy's loss alone reaches the trunk
    grads, losses = [], []
    for mb in (1, 3):
        critic = make_critic(model, pcfg)
        torch.manual_seed(0)
        torch.nn.init.normal_(critic.head.score.weight, std=0.5)  # values that vary: advantages vary along a row
        gcfg = GRPOConfig(micro_batch_size=mb, max_grad_norm=1e9)  # loss_agg: the default, seq-mean-token-mean
        pre = ppo_advantages(model, critic, batch, scores, gcfg, pcfg)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        captured = []
        orig_step = opt.step
        opt.step = lambda *a, **k: (captured.append([p.grad.clone() for p in model.parameters()]),
                                    orig_step(*a, **k))[1]
        m = ppo_step(model, critic, batch, scores, opt, gcfg, pcfg)
        assert m["skipped"] == 0.0
        grads.append(captured[0])
        losses.append(m["loss"])
    mask, adv = pre["loss_mask"], pre["advantages"]
    seq_mean = ((-adv * mask).sum(1) / mask.sum(1)).mean().item()
    assert abs(seq_mean) > 1e-2  # a sequence mean of token means would not be 0: the check can fail
    assert losses == pytest.approx([0.0, 0.0], abs=1e-5)
    model.zero_grad(set_to_none=True)
    logp, _ = naive_token_logprobs(model, batch.input_ids, batch.attention_mask)
    (-(adv * logp * mask).sum() / mask.sum()).backward()
    oracle = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    for got in grads:
        for a, b in zip(got, oracle):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_a_nonfinite_critic_gradient_skips_the_policys_step_too(tiny):
    """The policy's and the critic's gradients come from one loss: when either norm is not finite (here an overflow
    in the critic's backward only), neither optimizer steps, both report it, and every gradient is dropped."""
    _, tok = tiny
    model = load_model("tiny-qwen2", device="cpu")[0]  # a private copy: a wrong step would change it
    pcfg = PPOConfig(kl_coef=0.0)
    critic = make_critic(model, pcfg)
    weights = [p.detach().clone() for p in [*model.parameters(), *critic.parameters()]]
    hook = critic.head.score.weight.register_hook(lambda g: g * float("inf"))
    try:
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        m = ppo_step(model, critic, _batch(tok, seed=6), torch.tensor([1.0, 0.0, 1.0]), opt, GRPOConfig(), pcfg)
    finally:
        hook.remove()
    assert m["skipped"] == 1.0 and math.isfinite(m["grad_norm"]) and not math.isfinite(m["critic_grad_norm"])
    assert all(torch.equal(a, b) for a, b in zip(weights, [*model.parameters(), *critic.parameters()]))
    assert all(p.grad is None for p in [*model.parameters(), *critic.parameters()])
