"""Scale-out: our multi-turn search rollout as a `rollout_func` for `trl.GRPOTrainer`.

TRL then owns the rest (accelerate / DeepSpeed, several GPUs, vLLM for generation if you bring your own rollout on
it): it receives prompt ids, completion ids (sampled and inserted tokens, as the model saw them), the sampling
log-probs and `env_mask` (1 = sampled by the policy, 0 = inserted passages or feedback), and masks its loss with it —
the same retrieved-token masking as our loop. The reward function reads the answer our parser extracted.

Two things TRL needs that our own loop does not:
- Each process seeds its rollouts with its own index as well as the step: TRL's sampler sends copies of one prompt
  to several processes, and the same seed there would sample the same trajectory in each (a group of 4 with 2
  distinct completions).
- An answered trajectory ends at `</answer>` (a stop string), with no EOS; TRL counts a completion without a final
  EOS as truncated (and `mask_truncated_completions=True` would drop its loss). So an EOS is appended, with
  env_mask 0: the policy never sampled it, and it carries no loss, as in our loop.

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

import numpy as np

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
    calls: dict[int, int] = {}  # rollouts so far at each step (TRL may generate more than once a step)

    def rollout_func(prompts: list, trainer) -> dict[str, list]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        tokenizer = trainer.processing_class
        step = int(trainer.state.global_step)
        calls[step] = calls.get(step, 0) + 1
        seed = np.random.SeedSequence([base.seed, step, trainer.accelerator.process_index, calls[step]])
        was_training = model.training
        model.eval()
        try:
            cfg = dataclasses.replace(base, seed=int(seed.generate_state(1)[0]))
            result = rollout(model, tokenizer, [_question(p) for p in prompts], retriever, cfg)
        finally:
            model.train(was_training)
        ts = result.trajectories
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        ends = [eos if t.answer is not None and t.ids[-1:] != eos else [] for t in ts]  # an EOS, not sampled, no loss
        return {
            "prompt_ids": [t.ids[: t.prompt_len] for t in ts],
            "completion_ids": [t.ids[t.prompt_len :] + end for t, end in zip(ts, ends)],
            "logprobs": [t.logprobs[t.prompt_len :] + [0.0] * len(end) for t, end in zip(ts, ends)],
            "env_mask": [t.gen_mask[t.prompt_len :] + [0] * len(end) for t, end in zip(ts, ends)],
            "search_r1_answer": [t.answer for t in ts],
            "searches": [t.searches for t in ts],
        }

    return rollout_func


def exact_match_reward(completions, search_r1_answer=None, golden_answers=None, **kwargs) -> list[float]:
    """TRL reward function: EM of the answer the rollout parsed from generated text, against `golden_answers`."""
    if search_r1_answer is None or golden_answers is None:
        raise ValueError("exact_match_reward needs the rollout's `search_r1_answer` and a `golden_answers` column")
    return [exact_match(a, g) for a, g in zip(search_r1_answer, golden_answers)]
