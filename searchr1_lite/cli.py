"""searchr1-lite: train a small LLM with reinforcement learning to reason and call a search engine (Search-R1,
rebuilt small). Start with `searchr1-lite demo --quick` (a first look, a few minutes on a CPU), then
`searchr1-lite demo` (the main job, 30 minutes); `searchr1-lite COMMAND --help` explains each command."""

# Each subcommand is a thin wrapper over a package function.

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def _at_least(least: float, kind=int):
    """An argparse type: a number of `kind` no smaller than `least` (a count of 0 or -1 would fail later, or loop)."""
    def parse(text: str):
        value = kind(text)  # argparse turns a ValueError into "invalid int value"
        if not value >= least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _port(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a port is a number, 1 to 65535, not {text!r}")
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, not {text}")
    return port


def _retriever_from_args(args):
    if getattr(args, "url", None):
        from .server import RemoteRetriever

        return RemoteRetriever(args.url).ping()
    from .retrieval import LocalRetriever

    return LocalRetriever.load(args.index)


def cmd_index(args) -> None:
    from .corpus import load_corpus
    from .retrieval import LocalRetriever

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file: an index is a folder (manifest.json beside the index); "
                              "pick another --out")
    if file := next((p for p in out.parents if p.exists() and not p.is_dir()), None):  # found before the build
        raise NotADirectoryError(f"--out {out}: {file} is a file, not a folder; pick another --out")
    if out.exists() and any(out.iterdir()) and not args.force:
        raise FileExistsError(f"{out} is not empty (an index is there?): pass --force to overwrite it, "
                              "or another --out")
    start = time.perf_counter()
    corpus = load_corpus(args.corpus)
    retriever = LocalRetriever.build(corpus, args.encoder, kind=None if args.encoder == "bm25" else args.kind)
    retriever.save(args.out)
    m = retriever.manifest
    print(f"indexed {len(corpus)} passages of {corpus.name} ({m.kind}, encoder {args.encoder}) "
          f"into {args.out} in {time.perf_counter() - start:.1f}s")


def cmd_search(args) -> None:
    retriever = _retriever_from_args(args)
    for query, hits in zip(args.query, retriever.search(args.query, args.k)):
        if args.json:
            print(json.dumps({"query": query, "hits": [{**p.to_row(), "score": p.score} for p in hits]}))
            continue
        print(f"Q: {query}")
        for rank, p in enumerate(hits, start=1):
            text = p.text if len(p.text) <= 240 else p.text[:240] + "…"
            print(f"  {rank}. [{p.score:.3f}] {p.title} (id {p.id})\n     {text}")
        if hits and all(p.score == 0 for p in hits):  # BM25 with no query word indexed (empty, or only stopwords)
            print("  (every hit scored 0: no word of the query is in the index, so these passages are arbitrary)")


def serve_retriever(args):
    """The retriever `serve` holds: an index folder, or a bare faiss file with the corpus its vectors stand for."""
    from .retrieval import LocalRetriever

    if args.faiss is None:
        given = [flag for flag, value in (("--corpus", args.corpus), ("--encoder", args.encoder)) if value is not None]
        if given:  # an index folder holds its own corpus and encoder: the flags would be ignored
            raise ValueError(f"{' and '.join(given)} go with --faiss only: the index {args.index} serves the corpus "
                             "and encoder it was built with (see its manifest.json); drop them")
        return LocalRetriever.load(args.index)
    if args.corpus is None:
        raise ValueError(f"--faiss {args.faiss} needs --corpus: the passages its vectors stand for, in their order "
                         "(a corpus name such as wiki-18, or a .jsonl file)")
    return LocalRetriever.from_faiss(args.faiss, args.corpus, args.encoder or "e5-base-v2")


def cmd_serve(args) -> None:
    from .server import serve

    retriever = serve_retriever(args)
    m = retriever.manifest
    info = {"passages": len(retriever.corpus), "index": m.kind, "corpus": retriever.corpus.name}
    serve(retriever, host=args.host, port=args.port, allow_remote=args.allow_remote, info=info)


# measured: `train --set max_steps=1` with no --config, 2 cores, 2026-12-07 (reward 0)
PAPER_SETTINGS_ON_A_CPU = "on a 2-core CPU a step took 10.5 min and 21 GB of RAM"


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def cmd_rollout(args) -> None:
    import dataclasses

    from .plots import trajectory_ansi
    from .reward import trajectory_reward
    from .rollout import rollout

    cfg = _run_config(args, {"max_turns": args.max_turns, "max_new_tokens": args.max_new_tokens, "topk": args.k,
                             "template": args.template, "temperature": args.temperature, "top_p": args.top_p,
                             "response_prefix": args.response_prefix, "chat": False if args.no_chat_template else None,
                             "group_size": args.group_size})
    _check_adapter(args)
    retriever = _run_retriever(args, cfg)
    if retriever is None:
        raise ValueError("rollout needs --index DIR, --url URL or --run RUN (a trained run's own retriever)")
    model, tokenizer = _policy_from_args(args, cfg)
    config = dataclasses.replace(cfg.rollout, seed=args.seed)
    result = rollout(model, tokenizer, [args.question] * args.n, retriever, config)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for i, t in enumerate(result.trajectories, start=1):
        line = f"searches {t.searches}, invalid actions {t.invalid_actions}, answer {t.answer!r}"
        if args.gold:
            line += f", reward {trajectory_reward(t.answer, args.gold):g}"
        if args.brief:
            print(f"{i}/{args.n}: {line}")
            continue
        print(f"--- trajectory {i}/{args.n}")
        print(trajectory_ansi(t, tokenizer, show_prompt=args.show_prompt, colour=colour))
        print(f"\n[{line}; {t.response_length} tokens generated]")
    if args.gold and args.n > 1:
        print(_solve_rate_summary([t.answer for t in result.trajectories], args.gold, cfg.optim.group_size))
    print(f"{result.generated_tokens} tokens in {result.seconds_generate:.1f}s of generation "
          f"({result.generated_tokens / max(result.seconds_generate, 1e-9):.0f} tokens/s), "
          f"{result.seconds_search:.2f}s of search")


def _solve_rate_summary(answers: list[str | None], gold: list[str], group_size: int) -> str:
    """How often the sampled answers were right, which answers came, and what that leaves GRPO to learn from."""
    from collections import Counter

    from .grpo import mixed_group_chance
    from .reward import trajectory_reward

    right = sum(trajectory_reward(a, gold) for a in answers)
    rate = right / len(answers)
    common = ", ".join(f"{a!r} x{n}" for a, n in Counter(answers).most_common(5))
    return (f"right: {right:g} of {len(answers)} ({rate:.2f}); answers: {common}\n"
            f"a GRPO group of {group_size} samples has a right and a wrong answer, the only kind with an advantage "
            f"to learn from, with chance {mixed_group_chance(rate, group_size):.2f} at this rate")


def cmd_train(args) -> None:
    from .train import TrainConfig, train

    cfg = TrainConfig.load(args.config, args.set)
    if args.config is None and not _has_gpu():
        print("searchr1-lite train: no --config, so the paper's rollout (4 turns of 500 tokens) with 2 x 5 samples "
              f"a step (the paper: 512 x 5): {PAPER_SETTINGS_ON_A_CPU}. --config world-cpu or smollm2-cpu fit a CPU.",
              file=sys.stderr)
    start = time.perf_counter()
    try:
        run = train(cfg, resume=args.resume, stop_after=args.stop_after)
    except KeyboardInterrupt:
        print(f"\nstopped now. {_resume_hint(args, Path(cfg.output_dir))}", file=sys.stderr)
        raise
    if not _finished(run, cfg.optim.max_steps):  # stopped early: by Ctrl-C / SIGTERM, or --stop-after
        print(f"stopped after {time.perf_counter() - start:.0f}s. {_resume_hint(args, run)}")
        if args.stop_after is None:
            raise KeyboardInterrupt  # exit code 130, as for any interrupted command
        return
    print(f"run in {run} ({time.perf_counter() - start:.0f}s): metrics.jsonl, checkpoints, adapter")
    if args.merge:
        from .train import merge_adapter

        print(f"merged model in {merge_adapter(run, run / 'merged')}")


def _finished(run: Path, max_steps: int) -> bool:
    """Did the run reach max_steps, or stop at its time budget (both save the final adapter)?"""
    from .checkpoint import read_rows

    rows = read_rows(run / "metrics.jsonl")
    last = rows[-1] if rows else {}
    return last.get("step", 0) >= max_steps or "stopped" in last


def _resume_hint(args, run: Path) -> str:
    from .checkpoint import latest_checkpoint

    try:
        checkpoint = latest_checkpoint(run)
    except FileNotFoundError:
        checkpoint = None
    command = " ".join(["searchr1-lite train", *(["--config", args.config] if args.config else []),
                        *(["--set", *args.set] if args.set else []), "--resume"])
    if checkpoint is None and not (run / "metrics.jsonl").exists():
        return f"Nothing was written in {run}: run the same command again to start over."
    if checkpoint is None:
        return f"No checkpoint yet in {run} (save_every): resume from step 0 with: {command}"
    return f"Last checkpoint: {checkpoint}. Resume with: {command}"


def cmd_eval(args) -> None:
    from .corpus import load_corpus
    from .data import QAExample, load_eval_set
    from .evaluate import METHODS, evaluate

    methods = [m.strip() for m in args.method.split(",")]  # checked before the slow part, as --out
    if unknown := [m for m in methods if m not in METHODS]:
        raise ValueError(f"--method {unknown[0]!r}: choose from {', '.join(METHODS)}, comma-separated")
    if args.out and (Path(args.out).is_dir() or not Path(args.out).resolve().parent.is_dir()):
        raise ValueError(f"--out {args.out}: name a CSV file in a folder that exists, e.g. eval.csv")
    if args.out and Path(args.out).exists() and Path(args.out).suffix != ".csv":  # a table replaces only a table
        raise FileExistsError(f"--out {args.out} exists and is not a .csv: name a new file, e.g. eval.csv")
    cfg = _run_config(args, {"max_turns": args.max_turns, "max_new_tokens": args.max_new_tokens, "topk": args.k,
                             "template": args.template})
    _check_adapter(args)
    retriever = _run_retriever(args, cfg)
    data: dict[str, list[QAExample]] = {}
    if args.run and not args.datasets:  # the run's own held-out questions
        from .train import split_questions

        held_out = _from_run_data(args.run, split_questions, cfg.data, getattr(retriever, "corpus", None), cfg.seed)[1]
        data["held-out"] = held_out[: args.limit] if args.limit else held_out
    if retriever is None and methods != ["direct"]:
        raise ValueError("--method rag/search needs --index DIR, --url URL or --run RUN")
    names = args.datasets or ("" if data else "fanoutqa")
    corpus = getattr(retriever, "corpus", None) or (load_corpus("wiki-vital") if "fanoutqa" in names else None)
    data.update({name: load_eval_set(name, args.limit, args.seed, corpus) for name in names.split(",") if name})
    if empty := [name for name, examples in data.items() if not examples]:
        raise ValueError(f"no questions to evaluate in {empty[0]!r}")
    model, tok = _policy_from_args(args, cfg)
    style = "world-examples" if cfg.rollout.template.startswith("world") else "paper"
    table = evaluate(model.eval(), tok, data, retriever, methods=methods, config=cfg.rollout,
                     topk=cfg.rollout.topk, style=style, progress=sys.stderr.isatty())
    print(table.round(3).to_string())
    if args.out:
        table.to_csv(args.out)


def _run_config(args, flags: dict):
    """The settings of `eval` and `rollout`: a trained run's own (`--run`), else the defaults, with the flags given
    (those not None) over them."""
    from .train import TrainConfig, load_run_config

    cfg = load_run_config(args.run) if args.run else TrainConfig()
    return cfg.updated({k: v for k, v in flags.items() if v is not None}, f"{args.command} flags")


def _run_retriever(args, cfg):
    """--index or --url if given, else a trained run's own retriever (`--run`), else None."""
    if args.index or args.url:
        return _retriever_from_args(args)
    if args.run:
        from .train import make_retriever

        return _from_run_data(args.run, make_retriever, cfg.data)[0]
    return None


def _from_run_data(run: str, fn, *fn_args):
    """fn(*fn_args) on a run's data settings; a file they name that is not here says where the name came from."""
    from .corpus import CorpusError

    try:
        return fn(*fn_args)
    except (CorpusError, FileNotFoundError) as e:
        raise type(e)(f"{e} (the name comes from {Path(run) / 'config.json'}; a relative path there is read from "
                      "the current folder, so run this where the run was trained)") from None


def _check_adapter(args) -> None:
    """--adapter, checked before the retriever is asked and the model loads (peft would take it for a hub id)."""
    from .models import adapter_problem

    if args.adapter and (problem := adapter_problem(args.adapter)):
        if Path(args.adapter).exists() or args.adapter.count("/") != 1:  # a hub id is owner/name, else a folder
            raise FileNotFoundError(f"--adapter {args.adapter}: {problem}; a saved LoRA adapter is a run's "
                                    "runs/NAME/adapter or a checkpoint's runs/NAME/checkpoint-N/adapter")


def _policy_from_args(args, cfg):
    """(model, tokenizer): a trained run's base model and adapter as trained (4-bit if it was), or --model with
    --adapter if given."""
    from .models import is_saved_adapter, load_model, load_policy

    if args.run:
        p, adapter = cfg.policy, args.adapter or str(Path(args.run) / "adapter")
        if not args.adapter and not is_saved_adapter(adapter):  # else peft asks the hub for it
            raise FileNotFoundError(f"{args.run}: no final adapter ({adapter}): the run has not finished. Resume "
                                    f"it (searchr1-lite train --config {Path(args.run) / 'config.json'} --resume), "
                                    f"or give a checkpoint's: --adapter {Path(args.run) / 'checkpoint-N' / 'adapter'}")
        return load_policy(p.model, quantization=p.quantization, adapter=adapter, lora_layers=p.lora_layers)
    if args.adapter:
        return load_policy(args.model, adapter=args.adapter)
    return load_model(args.model)


def cmd_plot(args) -> None:
    from matplotlib.backend_bases import FigureCanvasBase

    from .plots import plot_dynamics, run_links

    out = Path(args.out) if Path(args.out).suffix else Path(args.out + ".png")  # matplotlib would add .png itself
    formats = FigureCanvasBase.get_supported_filetypes()  # before the runs are read: png, pdf, svg, jpg, eps, ...
    if out.suffix.lower().lstrip(".") not in formats:
        raise ValueError(f"--out {args.out}: a figure is .png, .pdf, .svg or another format matplotlib writes "
                         f"({', '.join(sorted(formats))}), not {out.suffix}")
    continues, kept = run_links(args.runs)  # a demo's phase 2 after its phase 1, and the step a run kept
    fig = plot_dynamics(args.runs, out=out, continues=continues, kept=kept)
    drawn = {text.get_text() for text in fig.legends[0].get_texts()}  # what the figure shows, not what was asked
    print(f"wrote {out}" + "".join(f"; {run} drawn after {before}, whose adapter it started from"
                                   for run, before in continues.items() if f"{run} starts" in drawn))


def cmd_demo(args) -> None:
    """The main job: a policy learns to search the synthetic world (see searchr1_lite/demo.py)."""
    from .demo import DemoSettings, run_demo

    mode = "quick" if args.quick else "long" if args.long else "author_chain" if args.author_chain else None
    settings = getattr(DemoSettings, mode)() if mode else DemoSettings()
    if args.steps is not None:
        settings.train["max_steps"] = args.steps
    if args.one_phase:
        settings.two_hop_phase = None
    settings.ablation = args.no_mask
    settings.ppo = args.algorithm == "ppo"
    if args.budget_minutes is not None:
        settings.budget_minutes = args.budget_minutes or None
    out = args.out or "runs/" + "-".join(["demo", *([mode.replace("_", "-")] if mode else [])])
    try:
        run_demo(out, settings, fresh=args.fresh)
    except KeyboardInterrupt as e:
        print(f"\ninterrupted: {str(e) or 'run the same command again to resume'}", file=sys.stderr)
        raise


def _add_policy_args(parser: argparse.ArgumentParser, what_a_run_gives: str) -> None:
    """--model, --run and --adapter: the policy of `eval` and `rollout` (`_policy_from_args`)."""
    from .config import PolicyConfig

    parser.add_argument("--model", default=PolicyConfig.model, help="offline preset, local folder or hub id; "
                        "ignored with --run")
    parser.add_argument("--run", help=f"a trained run folder: {what_a_run_gives}")
    parser.add_argument("--adapter", help="a trained LoRA adapter folder (runs/NAME/adapter; with --run, e.g. one of "
                        "its checkpoints: runs/NAME/checkpoint-4/adapter)")


def _add_retriever_args(parser: argparse.ArgumentParser) -> None:
    from .server import URL

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", help="index folder built by `searchr1-lite index`")
    src.add_argument("--url", help=f"a retrieval service, e.g. {URL}")


class _ShowDefaults(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, unless it has none (None, False, empty) or says it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = action.default is None or action.default is False or action.default in ("", [], argparse.SUPPRESS)
        if nothing or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _config_keys() -> str:
    """`train --help`'s list of every config key and its default, read from the config's dataclasses (their one
    source), as YAML sections."""
    import textwrap

    from .config import TrainConfig

    lines = textwrap.wrap("config keys and their defaults, by a YAML file's sections (--set KEY=VALUE names a key "
                          "alone or with its section: max_turns=3 or rollout.max_turns=3):", 110)

    def as_yaml(value) -> str:  # what --set takes back: null, true, "" (not Python's None, True and nothing)
        if value is None or isinstance(value, bool):
            return "null" if value is None else str(value).lower()
        return '""' if value == "" else str(value)

    top = []
    for section, values in TrainConfig().to_dict().items():
        if isinstance(values, dict):
            lines += textwrap.wrap(", ".join(f"{k}={as_yaml(v)}" for k, v in values.items()), 110,
                                   initial_indent=f"  {section}: ", subsequent_indent=" " * 4)
        else:
            top.append(f"{section}={as_yaml(values)}")
    return "\n".join(lines + textwrap.wrap(", ".join(top), 110, initial_indent="  (top level) ",
                                           subsequent_indent=" " * 4))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("searchr1_lite")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="searchr1-lite", description=__doc__)
    verbose = dict(action="store_true", help="also show third-party warnings (hidden by default)")
    p.add_argument("-v", "--verbose", **verbose)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # -v after the subcommand too; SUPPRESS keeps a subcommand without it from resetting a -v given before it
    either_side = argparse.ArgumentParser(add_help=False)
    either_side.add_argument("-v", "--verbose", default=argparse.SUPPRESS, **verbose)
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser

    def add_parser(name: str, help: str, **kw) -> argparse.ArgumentParser:  # every subcommand: its summary atop
        return add(name, help=help, description=help[0].upper() + help[1:] + ".", formatter_class=_ShowDefaults,
                   parents=[either_side], **kw)

    sub.add_parser = add_parser
    for add_commands in (_retrieval_commands, _rollout_command, _training_commands, _demo_command):
        add_commands(sub)
    p.commands = sub.choices  # {name: its parser}: an unknown option is refused by its subcommand's parser
    return p


def _refuse_unknown(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> None:
    """Exit 2 with the subcommand's usage (not the top level's), naming the option meant where one is close: the
    subcommand's own, or for `train` a config key (`--max-steps 5` is `--set max_steps=5`; `--out` is output_dir)."""
    from .config import key_for
    from .suggest import closest

    sub = parser.commands[command]
    options = {o.lstrip("-"): o for action in sub._actions for o in action.option_strings}  # the dashes match anyway
    hints = []
    for option in (w.split("=")[0] for w in unknown if w.startswith("--")):  # `--lr=3` is the option --lr
        name = option[2:].replace("-", "_")
        key = "output_dir" if name in ("out", "output") else key_for(name)
        if command == "train" and key:
            hints.append(f"{option}: train takes config keys with --set, e.g. --set {key}=...")
        elif near := closest(option[2:], options):
            hints.append(f"{option}: did you mean {options[near]}?")
    sub.error(f"unrecognized arguments: {' '.join(unknown)}" + (f" ({'; '.join(hints)})" if hints else ""))


def _retrieval_commands(sub) -> None:
    """index, search, serve."""
    from .config import DataConfig
    from .rollout import RolloutConfig
    from .server import HOST, PORT

    s = sub.add_parser("index", help="build a retrieval index over a corpus")
    s.add_argument("--corpus", default=DataConfig.corpus,
                   help="wiki-vital | hotpotqa-distractor | wiki-18 | world[:seed=0,...] (a synthetic world) | "
                        "path to a jsonl corpus")
    s.add_argument("--encoder", default="bm25", help="bm25 | minilm | e5-base-v2 | any HF encoder id or folder")
    s.add_argument("--kind", default="flat", choices=["flat", "hnsw", "ivf"],
                   help="dense index kind (ignored with --encoder bm25)")
    s.add_argument("--out", required=True, help="where to write: the index folder")
    s.add_argument("--force", action="store_true", help="overwrite an index already in --out")
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("search", help="query an index (or a running service with --url)")
    s.add_argument("query", nargs="+", help="one or more questions (quote each)")
    _add_retriever_args(s)
    s.add_argument("-k", "--topk", dest="k", type=_at_least(1), default=RolloutConfig.topk, help="passages per query")
    s.add_argument("--json", action="store_true", help="one JSON line per query")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("serve", help="serve an index over HTTP in the paper's /retrieve format")
    held = s.add_mutually_exclusive_group(required=True)
    held.add_argument("--index", help="index folder built by `searchr1-lite index`")
    held.add_argument("--faiss", metavar="FILE", help="a prebuilt faiss index without a folder, such as the authors' "
                      "e5_Flat.index (with --corpus)")
    s.add_argument("--corpus", help="with --faiss: its passages in order, a corpus name (wiki-18) or a .jsonl file")
    s.add_argument("--encoder", default=None, help="with --faiss: the encoder that built it (default e5-base-v2)")
    s.add_argument("--host", default=HOST, help="address to bind (loopback unless --allow-remote)")
    s.add_argument("--port", type=_port, default=PORT, help="port to listen on")
    s.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    s.set_defaults(func=cmd_serve)


def _turn_options(s, passages: str):
    """-k, --max-turns and --max-new-tokens, as `rollout` and `eval` take them: None (the run's, else the config's
    default) unless given, and checked at parse time against the config's least values. Returns the defaults."""
    from .config import AT_LEAST
    from .rollout import RolloutConfig

    r = RolloutConfig()  # the defaults, defined once
    s.add_argument("-k", "--topk", dest="k", type=_at_least(AT_LEAST["rollout.topk"]), default=None,
                   help=f"{passages} (default {r.topk}, or the run's)")
    s.add_argument("--max-turns", type=_at_least(AT_LEAST["rollout.max_turns"]), default=None,
                   help=f"turns that may search (default {r.max_turns}, or the run's)")
    s.add_argument("--max-new-tokens", type=_at_least(AT_LEAST["rollout.max_new_tokens"]), default=None,
                   help=f"tokens generated per turn at most (default {r.max_new_tokens}, or the run's)")
    return r


def _rollout_command(sub) -> None:
    from .config import AT_LEAST, OptimConfig
    from .prompt import template_names
    from .server import URL

    s = sub.add_parser("rollout", help="let a model answer a question with the search loop; print the trajectory")
    _add_policy_args(s, "its model, adapter, prompt, sampling, turns and token limits, retriever and group size")
    s.add_argument("--index", help="index folder built by `searchr1-lite index` (or --url, or --run)")
    s.add_argument("--url", help=f"a retrieval service, e.g. {URL}")
    s.add_argument("--question", required=True, help="the question to answer")
    s.add_argument("--gold", nargs="+", action="extend", default=None, help="gold answers, quoted one by one "
                   "(--gold \"Leonardo da Vinci\" Leonardo), to print the reward (and, with --n > 1, how often it was "
                   "right)")
    s.add_argument("--n", type=_at_least(1), default=1, help="trajectories to sample")
    r = _turn_options(s, "passages per search")
    s.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature; 0 = greedy (default {r.temperature}, or the run's)")
    s.add_argument("--top-p", type=float, default=None, help="nucleus sampling: the smallest set of tokens with this "
                   f"much probability (default {r.top_p}, or the run's)")
    s.add_argument("--template", default=None, choices=template_names(),
                   help="the prompt: paper (the authors'), worked-example (one worked example, for small models); "
                   "for the synthetic world: world-examples (phase 1 of the demo), world-author-chain (its phase 2), "
                   "world-two-hop-example (--long's phase 2), world-typed-examples and world-same-searches "
                   "(docs/multi-hop experiments) (default paper, or the run's)")
    s.add_argument("--response-prefix", default=None,
                   help='e.g. "<think>": the response starts with it (default none, or the run\'s)')
    s.add_argument("--no-chat-template", action="store_true", help="plain text, not the tokenizer's chat template")
    s.add_argument("--group-size", type=_at_least(AT_LEAST["optim.group_size"]), default=None,
                   help=f"GRPO's group size, for the line on what a group could learn (default "
                   f"{OptimConfig().group_size}, or the run's)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed")
    s.add_argument("--show-prompt", action="store_true", help="print the prompt too")
    s.add_argument("--brief", action="store_true", help="one line per trajectory (searches, answer, reward)")
    s.set_defaults(func=cmd_rollout)


def _training_commands(sub) -> None:
    """train, eval, plot."""
    from .config import packaged_configs
    from .prompt import template_names
    from .server import URL

    s = sub.add_parser("train", help="train a LoRA policy with masked GRPO (or PPO: --set algorithm=ppo)",
                       epilog=_config_keys())
    s.add_argument("--config", help="a YAML file, or a packaged config by name: " + ", ".join(packaged_configs())
                   + f" (default: none, the paper's settings: 4 turns of 500 tokens; {PAPER_SETTINGS_ON_A_CPU}, "
                   "where smollm2-cpu or world-cpu fit)")
    s.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config keys (repeat it or list several)")
    s.add_argument("--resume", action="store_true", help="continue the run in output_dir from its last checkpoint")
    s.add_argument("--stop-after", type=_at_least(1), default=None,
                   help="stop (with a checkpoint) after N steps of this call")
    s.add_argument("--merge", action="store_true", help="also save the base model with the adapter merged in")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="EM of Direct / RAG / Search-R1 per dataset")
    _add_policy_args(s, "its model, adapter, prompt, turns and token limits, its retriever, and (without "
                     "--datasets) its held-out questions")
    s.add_argument("--method", default="direct,rag,search", help="comma-separated: direct, rag, search")
    s.add_argument("--datasets", default=None, help="comma-separated: nq,triviaqa,popqa,hotpotqa,"
                   "2wikimultihopqa,musique,bamboogle (hub), hotpotqa-distractor (hub, validation split), fanoutqa "
                   "(offline, the default) or jsonl paths")
    s.add_argument("--limit", type=_at_least(1), default=None,
                   help="questions per dataset: a random subset, seeded (default: all)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random subset")
    s.add_argument("--index", help="index folder built by `searchr1-lite index` (RAG and search need a retriever)")
    s.add_argument("--url", help=f"a retrieval service, e.g. {URL}")
    _turn_options(s, "passages per search and for RAG")
    s.add_argument("--template", default=None, choices=template_names(),
                   help="the prompt, as for `rollout` (default paper, or the run's)")
    s.add_argument("--out", help="where to write: a CSV file of the table (as well as printing it)")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("plot", help="training dynamics of one or more runs, overlaid")
    s.add_argument("runs", nargs="+", help="run folders (with metrics.jsonl)")
    s.add_argument("--out", required=True,
                   help="the figure: .png (added if missing), .pdf, .svg, or any format matplotlib writes")
    s.set_defaults(func=cmd_plot)


def _demo_command(sub) -> None:
    from .demo import DemoSettings

    s = sub.add_parser("demo", help="the main job: a 135M policy learns to search a synthetic world (CPU, offline)")
    size = s.add_mutually_exclusive_group()  # different demos
    size.add_argument("--quick", action="store_true",
                      help="a first look: small world, 3 steps of phase 1 only (no two-hop phase); about 5 min on 2 "
                           "cores (8 with --no-mask)")
    size.add_argument("--long", action="store_true",
                      help="the curriculum first tried: 30 phase-1 steps on all four kinds of question, then phase 2 "
                           "on them; the second search is learned and then unlearned on 2 cores "
                           "(docs/demo-cpu-long/), so phase 2 keeps its best evaluation; budget 2 h, resumable")
    size.add_argument("--author-chain", action="store_true",
                      help="--long with phase 2 and the test on the two kinds of question the demo keeps: phase 2 "
                           "learned the second search (docs/demo-cpu-author-chain/); about 40 min on 2 cores")
    s.add_argument("--one-phase", action="store_true",
                   help="phase 1 only, no curriculum phase 2 (lesson 05's reference: --no-mask --budget-minutes 0 "
                        "--steps 15)")
    s.add_argument("--no-mask", action="store_true",
                   help="also train the ablation (inserted tokens trained on) and plot it beside the masked run")
    s.add_argument("--algorithm", choices=["grpo", "ppo"], default="grpo",
                   help="ppo: also train PPO with a value head (same world, steps and budget as the GRPO run, which "
                        "is kept if the folder has it) and compare the two in the report")
    steps = ", ".join(f"{name} {make().train['max_steps']}" for name, make in (
        ("default", DemoSettings), ("--long", DemoSettings.long), ("--author-chain", DemoSettings.author_chain),
        ("--quick", DemoSettings.quick)))
    s.add_argument("--steps", type=_at_least(1), default=None, help=f"phase 1's training steps at most ({steps})")
    budgets = ", ".join(f"{name} {make().budget_minutes:g}" for name, make in (
        ("default", DemoSettings), ("--long and --author-chain", DemoSettings.long)))
    s.add_argument("--budget-minutes", type=_at_least(0, float), default=None,
                   help=f"the whole demo's time budget: training stops after the last step that fits ({budgets}; "
                        "0 = no budget, train every step; --quick has none)")
    s.add_argument("--out", default=None, help="where to write: the demo's folder (default runs/demo, "
                   "runs/demo-quick, runs/demo-long or runs/demo-author-chain)")
    s.add_argument("--fresh", action="store_true", help="delete the output folder first, if it holds a demo "
                   "(default: resume)")
    s.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args.command, unknown)
    if not args.verbose:
        from . import quiet_third_party

        quiet_third_party()
    from .corpus import CorpusError
    from .offline import HubUnavailable, OfflinePackageMissing
    from .retrieval import IndexMismatchError
    from .runtime import OutOfMemory
    from .server import RetrieverUnavailable

    try:
        args.func(args)
    except (CorpusError, HubUnavailable, IndexMismatchError, OfflinePackageMissing, RetrieverUnavailable,
            OutOfMemory, OSError, ValueError) as e:  # OSError: a path that is a folder, a file, too long, not ours
        print(f"searchr1-lite {args.command}: error: {_said(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _said(e: Exception) -> str:
    """An error as one line: the OS's own errors as "path: what", without their "[Errno 21]"."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror.lower()}" + (f" (and {e.filename2})" if e.filename2 else "")
    return str(e)


def run() -> None:
    """The `searchr1-lite` command (the script, `python -m searchr1_lite` and `python -m searchr1_lite.cli`):
    `main()`, then exit with its code."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # else tokenizers warns at each fork (DataLoader, xdist)
    code = main()
    if code == 130:  # interrupted: one more Ctrl-C while Python shuts down (atexit handlers) prints no traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    run()
