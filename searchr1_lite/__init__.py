"""searchr1_lite: Search-R1 (Jin et al., 2025, arXiv 2503.09516) rebuilt small enough to learn from.

One module a concept, by lesson:
    01 retrieval   corpus (passages, formatting), retrieval (BM25 / dense indexes), server (HTTP, the authors' API)
    02 rollout     models (policies, offline presets), prompt (the tag protocol), rollout (multi-turn generation
                   with the loss mask), reward (EM, F1), scripted (a model that follows a script, for tests)
    03 update      grpo (advantages, masked clipped loss, the step); 03b ppo (a critic, GAE, the value loss)
    04 training    config (every setting, one source), train (the loop), checkpoint (save, resume), runtime (time
                   budget, out-of-memory, signals, trackers), collapse (the checks after each step), tiers (GPU
                   and CPU settings for the lessons), trl_bridge (our rollout in TRL's GRPOTrainer)
    05 results     evaluate (Direct / RAG / Search-R1 beside the paper), data (QA sets), plots
    the demo       world (a synthetic world of people and places), world_prompts (its worked examples), demo
                   (`searchr1-lite demo`), report (report.md)
    exercises      the lessons' exercise checkers (`check_*`: your function against the package's own)
    plumbing       offline (the offline stack, the cache), cli (`searchr1-lite`); quiet_third_party below
"""

__version__ = "0.1.0"


def quiet_third_party() -> None:
    """Known third-party noise off: transformers', torch's and peft's deprecation notices about their own internals
    (FutureWarnings raised in their modules only, so one from your own code still shows), bitsandbytes' note that
    an optional CPU kernel package is missing, and `kernels`' note that offline it cannot check a kernel's publisher.
    The lessons call it; `searchr1-lite` does unless --verbose."""
    import logging
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is first imported
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|torch|peft)(\.|$)")
    warnings.filterwarnings("ignore", message=r".*use_reentrant parameter should be passed explicitly.*")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # transformers' `kernels`: "Skipping publisher trust check ... offline mode", on the CPU tier too, with no 4-bit
    logging.getLogger("kernels").setLevel(logging.ERROR)
