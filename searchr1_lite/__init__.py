"""searchr1_lite: Search-R1 (Jin et al., 2025, arXiv 2503.09516) rebuilt small enough to learn from.

One module a concept: corpus, retrieval, server (lesson 01); models; prompt, rollout, reward (02); grpo (03);
train (04); evaluate, plots (05).
"""

__version__ = "0.1.0"
