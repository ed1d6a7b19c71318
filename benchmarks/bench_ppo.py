"""A PPO step against a GRPO step on the same batch: time and peak memory, the critic shared or separate.

The policy is the demo's (configs/world-cpu.yaml: SmolLM2-135M, LoRA r=16 on the top 15 layers), the batch 8
trajectories laid out as Search-R1's are: a 300-token prompt, then three generated turns of 40 tokens with two
retrieved blocks of 120 between them (random token ids: the arithmetic does not care what they say). Each variant
runs in its own process: one warm-up step, then the median of `--repeats` steps. Memory is the process's resident
set, sampled every 5 ms, above what it held after loading the policy: so a separate critic's second copy of the base
weights counts against it, as it would on a GPU.

    grpo          grpo_step (the recipe: beta 0, one forward/backward)
    ppo-shared    ppo_step with a value head on the policy's trunk (the default)
    ppo-separate  ppo_step with a critic of its own (the base model again, its own LoRA adapter and head)

    python benchmarks/bench_ppo.py [--repeats 3] [--json benchmarks/results/ppo.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

from _child import forward_args, report, run_child

VARIANTS = ("grpo", "ppo-shared", "ppo-separate")
LAYOUT = [(300, 0), (40, 1), (120, 0), (40, 1), (120, 0), (40, 1)]  # (tokens, generated?)


class PeakRSS:
    """The largest resident set (MiB) seen while the block runs, sampled by a thread."""

    def __enter__(self):
        self.peak, self._stop = rss_mib(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(variant: str, batch: int, repeats: int) -> dict:
    import torch

    from searchr1_lite.config import TrainConfig
    from searchr1_lite.grpo import TrajectoryBatch, group_advantages, grpo_step
    from searchr1_lite.ppo import make_critic, ppo_step
    from searchr1_lite.train import make_optimizer, policy_for

    torch.manual_seed(0)
    cfg = TrainConfig.load("world-cpu", ["algorithm=" + ("grpo" if variant == "grpo" else "ppo"),
                                         "critic=" + ("separate" if variant == "ppo-separate" else "shared")])
    model, tokenizer = policy_for(cfg)
    g = torch.Generator().manual_seed(0)
    seq = sum(n for n, _ in LAYOUT)
    ids = torch.randint(100, 40_000, (batch, seq), generator=g)
    gen = torch.cat([torch.full((batch, n), flag) for n, flag in LAYOUT], dim=1)
    data = TrajectoryBatch(ids, torch.ones_like(ids), gen)
    scores = torch.tensor([1.0, 0.0] * (batch // 2))
    gcfg = cfg.grpo_config()
    optimizer, _ = make_optimizer(model, cfg)
    for group in optimizer.param_groups:
        group["lr"] = 0.0  # every repeat sees the same weights; the optimizer's state is still allocated
    base = rss_mib()
    with PeakRSS() as peak:
        if variant == "grpo":
            adv = group_advantages(scores, 2)

            def step():
                return grpo_step(model, data, adv, optimizer, gcfg)
        else:
            critic = make_critic(model, cfg.ppo, lambda: policy_for(cfg)[0])
            for group in critic.optimizer.param_groups:
                group["lr"] = 0.0

            def step():
                return ppo_step(model, critic, data, scores, optimizer, gcfg, cfg.ppo)
        step()  # warm-up: allocator pools, the optimizer's state
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            metrics = step()
            times.append(time.perf_counter() - start)
    return {"variant": variant, "seconds": statistics.median(times), "all_seconds": times,
            "peak_mib_above_load": peak.peak - base, "tokens_trained": metrics["tokens_trained"],
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)
            + (sum(p.numel() for p in critic.parameters()) if variant != "grpo" else 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the result here")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.repeats)))
        return
    runs = {v: run_child(__file__, v, forward_args(args)) for v in VARIANTS}
    g, shared, separate = (runs[v] for v in VARIANTS)
    result = {"batch": args.batch, "layout": LAYOUT, "cores": os.cpu_count(), **runs,
              "time_ratio_shared": shared["seconds"] / g["seconds"],
              "time_ratio_separate": separate["seconds"] / g["seconds"],
              "memory_mib_more_shared": shared["peak_mib_above_load"] - g["peak_mib_above_load"],
              "memory_mib_more_separate": separate["peak_mib_above_load"] - g["peak_mib_above_load"]}
    report(result, args.json,
           f"one update, SmolLM2-135M + LoRA (the demo's), {args.batch} x {sum(n for n, _ in LAYOUT)} tokens, "
           f"{os.cpu_count()} cores: GRPO {g['seconds']:.1f}s / {g['peak_mib_above_load']:.0f} MiB; PPO shared "
           f"critic {shared['seconds']:.1f}s ({result['time_ratio_shared']:.2f}x) / "
           f"{shared['peak_mib_above_load']:.0f} MiB; PPO separate critic {separate['seconds']:.1f}s "
           f"({result['time_ratio_separate']:.2f}x) / {separate['peak_mib_above_load']:.0f} MiB (peak resident "
           "memory above the loaded policy, median time of the repeats)")


if __name__ == "__main__":
    main()
