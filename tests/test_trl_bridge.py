"""The TRL bridge: one real GRPOTrainer step on CPU with our rollout; inserted tokens carry no loss."""

from types import SimpleNamespace

import pytest

from searchr1_lite.corpus import Passage
from searchr1_lite.rollout import RolloutConfig
from searchr1_lite.scripted import ScriptedLM
from searchr1_lite.trl_bridge import exact_match_reward, make_rollout_func


class FixedRetriever:
    def search(self, queries, k=3):
        return [[Passage(str(j), f'"Doc {j}"\nA passage about {q}, number {j}.') for j in range(k)] for q in queries]


def _trainer(model, tok, step=0, process=0):
    return SimpleNamespace(model=model, processing_class=tok, state=SimpleNamespace(global_step=step),
                           accelerator=SimpleNamespace(unwrap_model=lambda m: m, process_index=process))


def test_rollout_func_output_lines_up():
    from searchr1_lite.models import qwen25_tokenizer

    tok = qwen25_tokenizer()
    script = ["<search> Mona Lisa </search>", "<answer> Leonardo da Vinci </answer>"]
    model = ScriptedLM(tok, [script])
    out = make_rollout_func(FixedRetriever(), RolloutConfig())(["Who painted the Mona Lisa?"] * 2, _trainer(model, tok))
    assert len(out["prompt_ids"]) == 2
    for comp, mask, lp in zip(out["completion_ids"], out["env_mask"], out["logprobs"]):
        assert len(comp) == len(mask) == len(lp)
        assert tok.decode([c for c, m in zip(comp, mask) if m]) == "".join(script)
        assert "<information>" in tok.decode([c for c, m in zip(comp, mask) if not m])
    assert exact_match_reward(None, out["search_r1_answer"], [["Leonardo da Vinci"]] * 2) == [1.0, 1.0]


def test_answered_trajectories_end_in_an_eos_that_carries_no_loss():
    """TRL calls a completion truncated unless its last id is an EOS or pad (`mask_truncated_completions` would then
    drop its loss): an answered trajectory gets an EOS it did not sample (env_mask 0); one cut off by the turn limit
    does not."""
    from searchr1_lite.models import qwen25_tokenizer

    tok = qwen25_tokenizer()
    answered = ["<search> Mona Lisa </search>", "<answer> Leonardo da Vinci </answer>"]
    cut_off = ["<search> Mona Lisa </search>", "<search> Louvre </search>"]
    out = make_rollout_func(FixedRetriever(), RolloutConfig(max_turns=1))(
        ["Who painted the Mona Lisa?"] * 2, _trainer(ScriptedLM(tok, [answered, cut_off]), tok))
    truncated = [ids[-1] not in (tok.eos_token_id, tok.pad_token_id) for ids in out["completion_ids"]]  # TRL's rule
    assert out["search_r1_answer"] == ["Leonardo da Vinci", None] and truncated == [False, True]
    assert out["env_mask"][0][-1] == 0 and out["logprobs"][0][-1] == 0.0
    assert tok.decode(out["completion_ids"][0][-4:-1]).endswith("</answer>")


def test_processes_sharing_a_prompt_sample_different_trajectories():
    """TRL's RepeatSampler with 4 generations, 2 rows a process and 2 processes: one prompt's 4 copies are split
    across both processes at the same step, and the group must still hold 4 different samples."""
    import torch
    from trl.trainer.utils import RepeatSampler

    from searchr1_lite.models import load_model

    model, tok = load_model("tiny-qwen2", device="cpu")
    data = ["Who painted the Mona Lisa?", "Where is Microsoft based?"]
    indices = list(RepeatSampler(data, mini_repeat_count=4, batch_size=1, seed=0))[:4]  # one generation batch
    assert len(set(indices)) == 1
    completions = []
    for process in (0, 1):  # each process builds its own rollout_func from the same global state, as in a launch
        rollout_func = make_rollout_func(FixedRetriever(), RolloutConfig(max_turns=1, max_new_tokens=8))
        torch.manual_seed(0)
        share = indices[2 * process : 2 * process + 2]
        out = rollout_func([data[i] for i in share], _trainer(model, tok, step=3, process=process))
        completions += [tuple(c) for c in out["completion_ids"]]
    assert len(set(completions)) == 4


@pytest.mark.slow
def test_one_grpo_trainer_step_with_the_bridge(tmp_path, monkeypatch):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from searchr1_lite.models import load_model

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    model, tok = load_model("tiny-qwen2", device="cpu")
    data = Dataset.from_list([{"prompt": "Who painted the Mona Lisa?", "golden_answers": ["Leonardo da Vinci"]},
                              {"prompt": "Where is Microsoft based?", "golden_answers": ["Redmond"]}])
    seen = {}
    rollout_func = make_rollout_func(FixedRetriever(), RolloutConfig(max_turns=1, max_new_tokens=6))

    def recording(prompts, trainer):
        out = rollout_func(prompts, trainer)
        seen["out"] = out
        return out

    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2, max_steps=1,
                      learning_rate=1e-3, logging_steps=1, report_to=[], use_cpu=True, beta=0.0,
                      max_completion_length=256, save_strategy="no")
    trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=exact_match_reward, train_dataset=data,
                          rollout_func=recording, args=args)
    captured = {}
    orig = trainer._compute_loss

    def spy(model_, inputs):
        captured["inputs"] = inputs
        return orig(model_, inputs)

    monkeypatch.setattr(trainer, "_compute_loss", spy)
    trainer.train()
    inputs = captured["inputs"]
    # TRL's loss mask is completion_mask * tool_mask, and tool_mask is our env_mask: inserted tokens carry no loss
    assert "tool_mask" in inputs
    out = seen["out"]
    n = len(out["env_mask"])
    for i in range(n):
        L = len(out["env_mask"][i])
        assert inputs["tool_mask"][i, :L].tolist() == out["env_mask"][i]
        assert 0 in out["env_mask"][i]  # feedback or passages were inserted (random weights: invalid actions)
    assert trainer.state.global_step == 1
