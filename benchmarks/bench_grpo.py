"""One `grpo_step`: chunked log-probs vs the naive full log-softmax, peak memory and time, same inputs.

The model is `tiny-qwen2`: a small random Qwen2 with the real 151,936-entry vocabulary, where the float32
`[batch, seq, vocab]` logits are the memory peak of a naive step (on a 3B model too: 8 x 1024 tokens of logits are
5 GB). Each variant runs in its own process, so its peak resident memory is its own (`ru_maxrss`), measured above
the memory held after loading. Prints JSON and one summary line; the two variants' losses and gradient norms must
agree.

    python benchmarks/bench_grpo.py [--batch 8] [--seq 512] [--repeats 3] [--json benchmarks/results/grpo.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

from _child import forward_args, report, run_child


def child(impl: str, batch: int, seq: int, repeats: int) -> dict:
    import torch

    from searchr1_lite.grpo import GRPOConfig, TrajectoryBatch, grpo_step
    from searchr1_lite.models import load_model

    model, tok = load_model("tiny-qwen2", device="cpu")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 150_000, (batch, seq), generator=g)
    gen_mask = torch.zeros_like(ids)
    gen_mask[:, seq // 4 :] = (torch.rand(batch, seq - seq // 4, generator=g) > 0.4).long()  # ~60% generated
    data = TrajectoryBatch(ids, torch.ones_like(ids), gen_mask)
    adv = torch.randn(batch, generator=g)
    cfg = GRPOConfig(beta=0.0, micro_batch_size=batch, logprob_chunk=512 if impl == "chunked" else None)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: every repeat sees the same weights
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB held before the step
    times, metrics = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        metrics = grpo_step(model, data, adv, opt, cfg)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"impl": impl, "seconds": statistics.median(times), "peak_mib_above_load": peak - base,
            "loss": metrics["loss"], "grad_norm": metrics["grad_norm"], "tokens": metrics["tokens_trained"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the result here")
    ap.add_argument("--child", choices=["chunked", "naive"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.seq, args.repeats)))
        return
    runs = {impl: run_child(__file__, impl, forward_args(args)) for impl in ("chunked", "naive")}
    c, n = runs["chunked"], runs["naive"]
    result = {"batch": args.batch, "seq": args.seq, "vocab": 151936, "repeats": args.repeats, "cores": os.cpu_count(),
              **runs,
              "memory_ratio": n["peak_mib_above_load"] / max(c["peak_mib_above_load"], 1e-9),
              "time_ratio": c["seconds"] / n["seconds"],
              "same_loss": abs(c["loss"] - n["loss"]) <= 1e-5 * max(1.0, abs(n["loss"])),
              "same_grad_norm": abs(c["grad_norm"] - n["grad_norm"]) <= 1e-4 * max(1.0, n["grad_norm"])}
    report(result, args.json,
           f"grpo_step on tiny-qwen2 (vocab 151,936), {args.batch}x{args.seq} tokens: peak memory "
           f"{c['peak_mib_above_load']:.0f} MiB chunked vs {n['peak_mib_above_load']:.0f} MiB naive = "
           f"{result['memory_ratio']:.1f}x lower (goal >= 3x); time {c['seconds']:.2f}s vs {n['seconds']:.2f}s; "
           f"equal results: loss {result['same_loss']}, grad norm {result['same_grad_norm']}")


if __name__ == "__main__":
    main()
