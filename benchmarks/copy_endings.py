"""Is Drothen's `then` hard to copy because of Drothen, or because of `then`? The Drothen questions' own greedy
prefixes (everything up to the policy's last "... was born in" after its passages), with the city renamed in them to
first + ending, and p(ending | prefix, first) read off: with the new name in the passage (the copy) and with the
passage naming another city (the prior, no copy source). The base model and phase 1 of a demo.

    python benchmarks/copy_endings.py runs/demo > docs/multi-hop/copy-endings.txt

docs/multi-hop section 31 reads it: with no copy source every ending has p about 0; with one, the policy copies
12 of 14 endings after ` Dro` with p 0.59-1.00, and `then` (0.13-0.14) and `that` (0.04) hardly at all, the same two
lowest or near it after ` Tro`, ` Bet` and ` Vol`: the copy fails on the token, and most after ` Dro`.
"""

import argparse
import contextlib
import dataclasses
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from copy_probe import birthplace_questions, born_in_prefix  # noqa: E402

from searchr1_lite.models import load_policy  # noqa: E402
from searchr1_lite.rollout import rollout  # noqa: E402
from searchr1_lite.train import load_run_config, make_retriever  # noqa: E402

FIRSTS = ["Dro", "Tro", "Bet", "Vol"]  # first pieces after which (almost) every ending below is one token
ENDINGS = ["then", "that", "this", "here", "from", "and", "art", "end", "ven", "res", "bor", "zo", "ella", "gu"]


def ending_probability(model, tokenizer, prefix: str, first: str, ending: str) -> float | None:
    """p(ending | prefix + " " + first); None where " first+ending" is not the two tokens ` first`, `ending`."""
    a = tokenizer(prefix, add_special_tokens=False).input_ids
    b = tokenizer(prefix + " " + first + ending, add_special_tokens=False).input_ids
    if b[:len(a)] != a or tokenizer.convert_ids_to_tokens(b[len(a):]) != ["Ġ" + first, ending]:
        return None
    with torch.no_grad():
        return model(torch.tensor([b])).logits[0, -2].float().softmax(-1)[b[-1]].item()


def greedy_prefixes(model, tokenizer, questions: list[dict], cfg) -> list[str]:
    result = rollout(model, tokenizer, [q["question"] for q in questions], make_retriever(cfg.data)[0],
                     dataclasses.replace(cfg.rollout, temperature=0.0, seed=0))
    prefixes = [born_in_prefix(tokenizer.decode(t.ids)) for t in result.trajectories]
    return [p for p in prefixes if p is not None]


def table(model, tokenizer, prefixes: list[str], city: str, other: str) -> list[str]:
    lines = [f"{'':6s}" + "".join(f"{e:>7s}" for e in ENDINGS)]
    for first in FIRSTS:
        for source, label in ((True, "copy"), (False, "prior")):
            if not source and first != FIRSTS[0]:
                continue
            cells = []
            for ending in ENDINGS:
                ps = [ending_probability(model, tokenizer, p.replace(city, first + ending if source else other),
                                         first, ending) for p in prefixes]
                ps = [p for p in ps if p is not None]
                cells.append(f"{statistics.median(ps):7.3f}" if ps else f"{'-':>7s}")
            lines.append(f"{first:>4s} {label[0]}" + "".join(cells))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("demo", type=Path, help="a demo's folder (runs/demo): its world/ and its phase-1 run, train/")
    ap.add_argument("--city", default="Drothen", help="whose questions' prefixes to use")
    ap.add_argument("--other", default="Vohas", help="the city the passage names instead, for the prior")
    args = ap.parse_args()
    questions = [q for q in birthplace_questions(args.demo) if q["golden_answers"][0] == args.city]
    cfg = load_run_config(args.demo / "train")
    p = cfg.policy
    model, tokenizer = load_policy(p.model, quantization=p.quantization, adapter=str(args.demo / "train" / "adapter"),
                                   lora_layers=p.lora_layers)
    model.eval()
    print(f"median p(ending | ... first) over the {args.city} questions' greedy prefixes; rows: first piece, c = the "
          f"name first+ending in the passage, p = the passage names {args.other} instead; '-': not two tokens")
    for label, adapter_off in (("base model", True), ("phase 1", False)):
        with model.disable_adapter() if adapter_off else contextlib.nullcontext():
            prefixes = greedy_prefixes(model, tokenizer, questions, cfg)
            print(f"== {label} ({len(prefixes)} prefixes)")
            print("\n".join(table(model, tokenizer, prefixes, args.city, args.other)), flush=True)


if __name__ == "__main__":
    main()
