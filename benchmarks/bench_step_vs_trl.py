"""One full training step (rollout + update) of our loop vs `trl.GRPOTrainer` with our rollout (the TRL bridge).

Same model, same questions, same group size, same rollout settings; each variant in its own process so that its
peak resident memory (`ru_maxrss`, or peak CUDA memory on a GPU) is its own. Prints JSON and one summary line.

On CPU the shapes are small (`--model tiny-qwen2` or `smollm2-135m-instruct`). The Qwen2.5-3B figure this
benchmark is meant for (4-bit + LoRA r=16, gradient checkpointing, 8 prompts x group 5, 1,024-token trajectories,
goal <= 14 GB on a 16 GB GPU) needs a GPU and is measured only in part (`make gpu-check`: docs/gpu.md).

    python benchmarks/bench_step_vs_trl.py [--model smollm2-135m-instruct] [--prompts 2] [--group 4] [--tokens 32]
                                        [--json benchmarks/results/step_vs_trl.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

from _child import forward_args, report, run_child


def _peak_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(args) -> dict:
    from searchr1_lite.train import TrainConfig, train

    out = tempfile.mkdtemp()
    cfg = TrainConfig().updated({"model": args.model, "max_steps": 1, "prompts_per_step": args.prompts,
                                 "group_size": args.group, "max_turns": args.turns, "max_new_tokens": args.tokens,
                                 "micro_batch_size": args.micro_batch, "output_dir": out, "eval_size": 1,
                                 "progress": False, "learning_rate": 1e-5})
    start = time.perf_counter()
    run = train(cfg)
    seconds = time.perf_counter() - start
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])  # its times leave the final evaluation out
    return {"variant": "ours", "step_seconds": row["rollout_seconds"] + row["update_seconds"],
            "rollout_seconds": row["rollout_seconds"], "update_seconds": row["update_seconds"],
            "wall_seconds_incl_load": seconds, "peak_memory_mb": _peak_mb()}


def run_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from searchr1_lite.corpus import load_corpus
    from searchr1_lite.data import fanoutqa_subquestions
    from searchr1_lite.models import load_policy
    from searchr1_lite.retrieval import LocalRetriever
    from searchr1_lite.rollout import RolloutConfig
    from searchr1_lite.trl_bridge import exact_match_reward, make_rollout_func

    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    corpus = load_corpus("wiki-vital")
    qs = fanoutqa_subquestions(corpus)[: args.prompts]
    data = Dataset.from_list([{"prompt": q.question, "golden_answers": q.answers} for q in qs])
    model, tok = load_policy(args.model)
    bridge = make_rollout_func(LocalRetriever.build(corpus, "bm25"),
                               RolloutConfig(max_turns=args.turns, max_new_tokens=args.tokens))
    cfg = GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.prompts * args.group,
                     num_generations=args.group, max_steps=1, learning_rate=1e-5, report_to=[], beta=0.001,
                     use_cpu=not torch.cuda.is_available(), save_strategy="no", logging_steps=1,
                     max_completion_length=4096, gradient_accumulation_steps=1,
                     # like for like with ours: TRL defaults to bf16 autocast and gradient checkpointing; ours runs
                     # float32 on a CPU without checkpointing (bf16 on a CPU without bf16 units is emulated: 10x slower)
                     bf16=torch.cuda.is_available(), gradient_checkpointing=False)
    trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=exact_match_reward, train_dataset=data,
                          rollout_func=bridge, args=cfg)
    start = time.perf_counter()
    trainer.train()
    return {"variant": "trl", "step_seconds": time.perf_counter() - start, "peak_memory_mb": _peak_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--turns", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=32, help="new tokens a turn")
    ap.add_argument("--micro-batch", type=int, default=4,
                    help="rows a forward (longest first); their shared prompt prefix runs once")
    ap.add_argument("--json", default=None, help="also write the result here")
    ap.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_ours(args) if args.child == "ours" else run_trl(args)))
        return
    results = {v: run_child(__file__, v, forward_args(args)) for v in ("ours", "trl")}
    ours, trl = results["ours"], results["trl"]
    summary = {"shape": {k: v for k, v in vars(args).items() if k not in ("child", "json")}, **results,
               "time_ratio_ours_vs_trl": ours["step_seconds"] / trl["step_seconds"],
               "memory_ratio_ours_vs_trl": ours["peak_memory_mb"] / trl["peak_memory_mb"]}
    report(summary, args.json,
           f"one step, {args.model}, {args.prompts} prompts x group {args.group}: ours "
           f"{ours['step_seconds']:.1f}s / {ours['peak_memory_mb']:.0f} MB, TRL GRPOTrainer + bridge "
           f"{trl['step_seconds']:.1f}s / {trl['peak_memory_mb']:.0f} MB (peak process memory)")


if __name__ == "__main__":
    main()
