"""Which city names a policy copies from the passage it retrieved: every single-hop birthplace question of a demo's
world (training and test), answered greedily, and the probability of the gold name after the policy's own words.

    python benchmarks/copy_probe.py runs/demo                       # the base model, phase 1 and phase 2
    python benchmarks/copy_probe.py runs/demo --runs train --out docs/multi-hop/copy-probe.json

For each policy it prints, per city, the greedy answers that were right and the median (over that city's questions)
of p(name | everything up to the last "... was born in" the policy wrote after its retrieved passages), teacher-forced
over all the name's tokens, and where a city's answers go wrong, each token's median probability and the likeliest
tokens at the weakest one. The base model is the runs' base with the adapter switched off. docs/multi-hop section 26
reads it: reinforcement learning taught the 135M policy to copy 28 of the world's 29 city names, and not Drothen;
section 28 reads the tokens: Drothen's copy fails at `then` after ` Dro`, among four endings the model prefers.
"""

import argparse
import collections
import contextlib
import dataclasses
import json
import math
from pathlib import Path

import torch

from searchr1_lite.models import load_policy
from searchr1_lite.reward import trajectory_reward
from searchr1_lite.rollout import rollout
from searchr1_lite.train import load_run_config, make_retriever


def birthplace_questions(demo: Path) -> list[dict]:
    rows = []
    for split in ("train", "test"):
        for line in (demo / "world" / f"{split}.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r["hops"] == 1 and r["kind"] == "birthplace":
                rows.append({**r, "split": split})
    return rows


def born_in_prefix(text: str) -> str | None:
    """A trajectory's text up to the last " was born in" after its last passage; None if it wrote none there."""
    cut, passage = text.rfind(" was born in"), text.rfind("</information>")
    return text[:cut + len(" was born in")] if cut > passage >= 0 else None


def copy_tokens(model, tokenizer, text: str, name: str) -> list[dict] | None:
    """Each token of " name" after the last " was born in" that follows the last passage: its probability there
    (teacher-forced) and the three likeliest tokens instead; None if the policy wrote no such words after a passage."""
    prefix = born_in_prefix(text)
    if prefix is None:
        return None
    a = tokenizer(prefix, add_special_tokens=False).input_ids
    b = tokenizer(prefix + " " + name, add_special_tokens=False).input_ids
    if b[:len(a)] != a:  # the name merged with the prefix's last token: no clean split to score
        return None
    with torch.no_grad():
        probs = model(torch.tensor([b])).logits[0].float().softmax(-1)
    rows = []
    for i in range(len(a), len(b)):
        top = probs[i - 1].topk(4)
        rows.append({"token": tokenizer.convert_ids_to_tokens(b[i]), "p": probs[i - 1, b[i]].item(),
                     "instead": [(tokenizer.convert_ids_to_tokens(int(j)), round(v.item(), 3))
                                 for v, j in zip(top.values, top.indices) if int(j) != b[i]][:3]})
    return rows


def probe(model, tokenizer, questions: list[dict], retriever, rollout_cfg) -> list[dict]:
    cfg = dataclasses.replace(rollout_cfg, temperature=0.0, seed=0)
    result = rollout(model, tokenizer, [q["question"] for q in questions], retriever, cfg, progress=True)
    rows = []
    for q, t in zip(questions, result.trajectories):
        gold = q["golden_answers"][0]
        rows.append({"id": q["id"], "split": q["split"], "gold": gold, "answer": t.answer,
                     "em": trajectory_reward(t.answer, q["golden_answers"]),
                     "copy": copy_tokens(model, tokenizer, tokenizer.decode(t.ids), gold)})
    return rows


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def summary(label: str, rows: list[dict]) -> str:
    lines = [f"== {label}: greedy EM {sum(r['em'] for r in rows) / len(rows):.3f} over {len(rows)} questions"]
    by_city = collections.defaultdict(list)
    for r in rows:
        by_city[r["gold"]].append(r)
    for city, rs in sorted(by_city.items(), key=lambda kv: sum(r["em"] for r in kv[1]) / len(kv[1])):
        scored = [r["copy"] for r in rs if r["copy"] is not None]
        median = f"{_median([math.prod(t['p'] for t in c) for c in scored]):.3f}" if scored else "  -  "
        wrong = collections.Counter(r["answer"] for r in rs if not r["em"]).most_common(3)
        lines.append(f"  {city:10s} right {sum(r['em'] for r in rs):.0f}/{len(rs)}  p(copy) median {median}"
                     + (f"  wrong answers {wrong}" if wrong else ""))
        if scored and wrong:  # where the copy goes astray: each token's median p, and what the first one has instead
            medians = [_median([c[i]["p"] for c in scored]) for i in range(len(scored[0]))]
            tokens = [f"{t['token']} {m:.2f}" for t, m in zip(scored[0], medians)]
            weakest = medians.index(min(medians))
            lines.append(f"{'':14s}by token: {' · '.join(tokens)}; at {scored[0][weakest]['token']!r} instead "
                         f"(first question): {scored[0][weakest]['instead']}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("demo", type=Path, help="a demo's folder (runs/demo): its world/ and trained runs")
    ap.add_argument("--runs", nargs="+", default=["train", "train-two-hop"], help="its runs to probe")
    ap.add_argument("--out", type=Path, help="write every row here as JSON")
    args = ap.parse_args()
    questions = birthplace_questions(args.demo)
    out = {}
    for name in args.runs:
        cfg = load_run_config(args.demo / name)
        retriever = make_retriever(cfg.data)[0]
        p = cfg.policy
        model, tokenizer = load_policy(p.model, quantization=p.quantization, adapter=str(args.demo / name / "adapter"),
                                       lora_layers=p.lora_layers)
        model.eval()
        for label, adapter_off in (("base", True), (name, False)):
            if label in out:
                continue
            with model.disable_adapter() if adapter_off else contextlib.nullcontext():
                out[label] = probe(model, tokenizer, questions, retriever, cfg.rollout)
            print(summary(label, out[label]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
