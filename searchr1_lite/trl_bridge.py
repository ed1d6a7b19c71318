"""Scale-out: our multi-turn search rollout as a `rollout_func` for `trl.GRPOTrainer`.

TRL then owns the rest (accelerate / DeepSpeed, several GPUs, vLLM for generation if you bring your own rollout on
it): it receives prompt ids, completion ids (sampled and inserted tokens, as the model saw them), the sampling
log-probs and `env_mask` (1 = sampled by the policy, 0 = inserted passages or feedback), and masks its loss with it —
the same retrieved-token masking as our loop. The reward function reads the answer our parser extracted.

    from trl import GRPOConfig, GRPOTrainer
    from searchr1_lite.trl_bridge import exact_match_reward, make_rollout_func
    trainer = GRPOTrainer(model=..., processing_class=tokenizer, reward_funcs=exact_match_reward,
                          train_dataset=dataset,  # columns: prompt (the question), golden_answers
                          rollout_func=make_rollout_func(retriever, RolloutConfig(...)), args=GRPOConfig(...))

Simplified: generation runs our Hugging Face engine inside each process; swapping it for vLLM is the next step
at scale (TRL's `vllm_generation` utilities), with the same masks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .reward import exact_match
from .rollout import RolloutConfig, rollout


def _question(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):  # conversational: last user message
        return str(prompt[-1].get("content", ""))
    raise ValueError(f"rollout_func: a prompt must be a question string or a list of messages, got {type(prompt)}")


def make_rollout_func(retriever, config: RolloutConfig | None = None):
    """A `rollout_func(prompts, trainer)` that runs one search trajectory per prompt it receives."""
    base = config or RolloutConfig()

    def rollout_func(prompts: list, trainer) -> dict[str, list]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        tokenizer = trainer.processing_class
        was_training = model.training
        model.eval()
        try:
            cfg = dataclasses.replace(base, seed=base.seed + int(trainer.state.global_step))
            result = rollout(model, tokenizer, [_question(p) for p in prompts], retriever, cfg)
        finally:
            model.train(was_training)
        ts = result.trajectories
        return {
            "prompt_ids": [t.ids[: t.prompt_len] for t in ts],
            "completion_ids": [t.ids[t.prompt_len :] for t in ts],
            "logprobs": [t.logprobs[t.prompt_len :] for t in ts],
            "env_mask": [t.gen_mask[t.prompt_len :] for t in ts],
            "search_r1_answer": [t.answer for t in ts],
            "searches": [t.searches for t in ts],
        }

    return rollout_func


def exact_match_reward(completions, search_r1_answer=None, golden_answers=None, **kwargs) -> list[float]:
    """TRL reward function: EM of the answer the rollout parsed from generated text, against `golden_answers`."""
    if search_r1_answer is None or golden_answers is None:
        raise ValueError("exact_match_reward needs the rollout's `search_r1_answer` and a `golden_answers` column")
    return [exact_match(a, g) for a, g in zip(search_r1_answer, golden_answers)]
