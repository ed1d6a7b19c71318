"""Rollout speed: the multi-turn engine vs plain `model.generate` vs a naive loop, in one run, on the offline model.

- engine: `searchr1_lite.rollout` on a batch of questions (one KV cache across turns, batched search).
- engine, padded: the same, with every feed one padded chunk (no `_Batch._feed_heads`), for the split's worth; the
  same tokens must come out.
- plain generate: `model.generate` on the same prompts at the same batch size, forced to produce the same number of
  new tokens per row as the engine's rows averaged (`min_new_tokens = max_new_tokens`), no search: the ceiling.
- naive loop: one trajectory at a time; every turn calls `model.generate` on the whole context so far (re-encoding
  it), with stop strings, then parses, searches and inserts; what a first implementation usually looks like.

Throughput is sampled tokens per second of generation time (search time excluded everywhere). Peak memory is the
process's resident set size sampled every 10 ms during each phase. Prints JSON, then one summary line.

    python benchmarks/bench_rollout.py [--batch 16] [--max-new-tokens 64] [--naive 4]
                                       [--json benchmarks/results/rollout.json]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import torch
from _child import report

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class PeakRSS:
    """Peak resident memory (MiB) of this process while the block runs."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        page = os.sysconf("SC_PAGE_SIZE")

        def watch():
            while not self._stop.is_set():
                with open("/proc/self/statm") as f:
                    self.peak = max(self.peak, int(f.read().split()[1]) * page)
                time.sleep(0.01)

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.mib = self.peak / 2**20


def naive_rollout(model, tokenizer, questions, retriever, cfg) -> tuple[int, float]:
    """One question at a time, the whole context re-encoded every turn. Returns (sampled tokens, generation seconds)."""
    from searchr1_lite.prompt import INVALID_ACTION_FEEDBACK, build_prompt, information_block, parse_action

    tokens, seconds = 0, 0.0
    torch.manual_seed(cfg.seed)
    for q in questions:
        ids = tokenizer(
            build_prompt(q, tokenizer, cfg.template), add_special_tokens=False, return_tensors="pt"
        ).input_ids
        for turn in range(cfg.max_turns + 1):
            start = time.perf_counter()
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=cfg.max_new_tokens,
                                 do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p,
                                 stop_strings=["</search>", "</answer>"], tokenizer=tokenizer,
                                 pad_token_id=tokenizer.pad_token_id)
            seconds += time.perf_counter() - start
            new = out[0, ids.shape[1] :]
            tokens += len(new)
            action = parse_action(tokenizer.decode(new, skip_special_tokens=True))
            if action.kind == "answer" or turn == cfg.max_turns:
                break
            if action.kind == "search":
                text = information_block(retriever.search([action.content], cfg.topk)[0])
            else:
                text = INVALID_ACTION_FEEDBACK
            obs = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
            ids = torch.cat([out, obs], dim=1)
    return tokens, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--max-turns", type=int, default=2)
    ap.add_argument("--naive", type=int, default=4, help="questions for the (slow) naive loop")
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()

    from searchr1_lite import rollout as engine_module
    from searchr1_lite.corpus import load_corpus
    from searchr1_lite.data import fanoutqa_subquestions
    from searchr1_lite.models import load_model
    from searchr1_lite.prompt import SEARCH_R1_WITH_EXAMPLE, build_prompt
    from searchr1_lite.retrieval import LocalRetriever
    from searchr1_lite.rollout import RolloutConfig, rollout

    corpus = load_corpus("wiki-vital")
    retriever = LocalRetriever.build(corpus, "bm25")
    questions = [e.question for e in fanoutqa_subquestions(corpus)][: args.batch]
    model, tokenizer = load_model(args.model, device="cpu")
    cfg = RolloutConfig(max_turns=args.max_turns, max_new_tokens=args.max_new_tokens, temperature=1.0, top_p=0.95,
                        seed=0, template=SEARCH_R1_WITH_EXAMPLE)
    rollout(model, tokenizer, questions[:2], retriever, RolloutConfig(max_turns=0, max_new_tokens=4))  # warm-up

    with PeakRSS() as mem:
        res = rollout(model, tokenizer, questions, retriever, cfg)
    trajs = res.trajectories
    engine = {"tokens": res.generated_tokens, "seconds": res.seconds_generate, "search_seconds": res.seconds_search,
              "tokens_per_s": res.generated_tokens / res.seconds_generate, "peak_rss_mib": mem.mib,
              "turns_mean": sum(len(t.turns) for t in trajs) / len(trajs),
              "searches": sum(t.searches for t in trajs), "answered": sum(t.answer is not None for t in trajs)}
    split = engine_module._split_width
    engine_module._split_width = lambda lengths: None
    try:
        padded = rollout(model, tokenizer, questions, retriever, cfg)
    finally:
        engine_module._split_width = split
    engine_padded = {"seconds": padded.seconds_generate,
                     "tokens_per_s": padded.generated_tokens / padded.seconds_generate,
                     "same_ids": sum(a.ids == b.ids for a, b in zip(trajs, padded.trajectories))}

    per_row = max(1, round(res.generated_tokens / len(questions)))
    prompts = [build_prompt(q, tokenizer, cfg.template) for q in questions]
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(0)
    with PeakRSS() as mem:
        start = time.perf_counter()
        out = model.generate(**enc, max_new_tokens=per_row, min_new_tokens=per_row, do_sample=True, temperature=1.0,
                             top_p=0.95, pad_token_id=tokenizer.pad_token_id)
        seconds = time.perf_counter() - start
    new_tokens = (out.shape[1] - enc.input_ids.shape[1]) * len(questions)
    plain = {"tokens": new_tokens, "seconds": seconds, "tokens_per_s": new_tokens / seconds, "peak_rss_mib": mem.mib}

    with PeakRSS() as mem:
        tokens, seconds = naive_rollout(model, tokenizer, questions[: args.naive], retriever, cfg)
    naive = {"questions": args.naive, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
             "peak_rss_mib": mem.mib}

    result = {"model": args.model, "batch": len(questions), "max_new_tokens_per_turn": args.max_new_tokens,
              "max_turns": args.max_turns, "threads": torch.get_num_threads(),
              "engine": engine, "engine_padded": engine_padded, "plain_generate": plain, "naive_loop": naive,
              "engine_vs_plain": engine["tokens_per_s"] / plain["tokens_per_s"],
              "padded_vs_plain": engine_padded["tokens_per_s"] / plain["tokens_per_s"],
              "engine_vs_naive": engine["tokens_per_s"] / naive["tokens_per_s"]}
    report(result, args.json,
           f"batch {len(questions)}: engine {engine['tokens_per_s']:.0f} tok/s = "
           f"{result['engine_vs_plain']:.2f}x plain generate ({plain['tokens_per_s']:.0f} tok/s; goal >= 0.8x; "
           f"{result['padded_vs_plain']:.2f}x with one padded feed) and "
           f"{result['engine_vs_naive']:.1f}x the naive loop ({naive['tokens_per_s']:.0f} tok/s; goal >= 3x); "
           f"peak RSS engine {engine['peak_rss_mib']:.0f} MiB, plain {plain['peak_rss_mib']:.0f} MiB, "
           f"naive {naive['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
