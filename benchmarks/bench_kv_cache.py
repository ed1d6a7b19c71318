"""The rollout engine's KV cache: room kept ahead (searchr1_lite.rollout._growing_cache) vs transformers' DynamicCache,
which concatenates, and so copies the whole cache, at every decoded token.

One run, side by side: the demo's phase-2 rollout (world of two kinds, `world-author-chain` prompt, 4 questions x 8
samples, temperature 1.0, 2 turns that may search, 64 tokens a turn) with each cache, alternating, `--repeats` times,
the same seed every time. Both must sample the same tokens (checked: the change is speed only). Prints JSON, then
one summary line.

    python benchmarks/bench_kv_cache.py [--repeats 3] [--json benchmarks/results/kv_cache.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from pathlib import Path

from _child import report

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()

    import torch
    from transformers import DynamicCache

    from searchr1_lite import rollout as engine
    from searchr1_lite.demo import DEMO_PHASE, TWO_KINDS, DemoSettings, train_config
    from searchr1_lite.retrieval import LocalRetriever
    from searchr1_lite.train import policy_for
    from searchr1_lite.world import load_world

    cfg = train_config(DemoSettings(), Path("/tmp/bench-kv-cache"))
    phase = {k: v for k, v in DEMO_PHASE.items() if hasattr(cfg.rollout, k)}
    rcfg = dataclasses.replace(cfg.rollout, **phase, seed=1)
    model, tokenizer = policy_for(cfg)
    world = load_world(TWO_KINDS)
    retriever = LocalRetriever.build(world.corpus, "bm25")
    picks = world.questions("train", 1)[:2] + world.questions("train", 2)[:2]
    questions = [e.question for e in picks for _ in range(cfg.optim.group_size)]
    growing = engine._growing_cache
    caches = {"growing": growing, "concatenating": DynamicCache}
    engine.rollout(model, tokenizer, questions[:2], retriever, rcfg)  # warm-up

    seconds: dict[str, list[float]] = {name: [] for name in caches}
    ids: dict[str, list] = {}
    tokens = 0
    for _ in range(args.repeats):
        for name, make in caches.items():
            engine._growing_cache = make
            start = time.perf_counter()
            res = engine.rollout(model, tokenizer, questions, retriever, rcfg)
            seconds[name].append(time.perf_counter() - start)
            ids.setdefault(name, [t.ids for t in res.trajectories])
            tokens = res.generated_tokens
    engine._growing_cache = growing
    same = sum(a == b for a, b in zip(ids["growing"], ids["concatenating"]))
    med = {name: statistics.median(s) for name, s in seconds.items()}
    result = {"batch": len(questions), "rollout": {k: v for k, v in dataclasses.asdict(rcfg).items()
                                                    if k in ("template", "temperature", "max_turns", "max_new_tokens")},
              "threads": torch.get_num_threads(), "repeats": args.repeats, "sampled_tokens": tokens,
              "seconds": seconds, "median_seconds": med, "speedup": med["concatenating"] / med["growing"],
              "same_trajectories": f"{same} of {len(questions)}"}
    report(result, args.json,
           f"the demo's phase-2 rollout ({len(questions)} rows, {tokens} sampled tokens, "
           f"{torch.get_num_threads()} threads): {med['growing']:.1f} s with room kept ahead vs "
           f"{med['concatenating']:.1f} s concatenating "
           f"(median of {args.repeats}), {result['speedup']:.2f}x; same trajectories {same} of {len(questions)}")


if __name__ == "__main__":
    main()
