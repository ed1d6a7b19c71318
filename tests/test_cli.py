import dataclasses
import json
import os
import re

import pytest

from searchr1_lite.cli import main
from searchr1_lite.world import load_world


def test_index_then_search_prints_the_mona_lisa_first(tmp_path, capsys):
    assert main(["index", "--corpus", "wiki-vital", "--encoder", "bm25", "--out", str(tmp_path / "idx")]) == 0
    assert main(["search", "--index", str(tmp_path / "idx"), "Who painted the Mona Lisa?", "-k", "3"]) == 0
    out = capsys.readouterr().out
    first_hit = [line for line in out.splitlines() if line.strip().startswith("1.")][0]
    assert "Mona Lisa" in first_hit and "arbitrary" not in out
    assert main(["search", "--index", str(tmp_path / "idx"), "It was the", ""]) == 0  # only stopwords; nothing
    out = capsys.readouterr().out
    assert out.count("[0.000]") == 6 and out.count("every hit scored 0: no word of the query is in the index") == 2
    # a synthetic world's passages by their spec, as `data.corpus` names them; the index reloads them from it
    world = load_world("world:seed=1,people=30")
    city, country = next(iter(world.facts["country"].items()))
    assert main(["index", "--corpus", "world:seed=1,people=30", "--out", str(tmp_path / "world")]) == 0
    assert capsys.readouterr().out.startswith(f"indexed {len(world.corpus)} passages of world-1")
    assert main(["search", "--index", str(tmp_path / "world"), f"Where is {city}?", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["query"] == f"Where is {city}?" and len(row["hits"]) == 3
    assert row["hits"][0]["contents"] == f'"{city}"\n{city} is a city in {country}.'  # the world's own passage


def test_errors_are_one_clear_line_and_exit_2(tmp_path, capsys):
    assert main(["search", "--index", str(tmp_path / "nowhere"), "q"]) == 2
    err = capsys.readouterr().err
    assert "nowhere: no such index folder" in err and "searchr1-lite index" in err and "Traceback" not in err
    (tmp_path / "empty-folder").mkdir()
    assert main(["search", "--index", str(tmp_path / "empty-folder"), "q"]) == 2
    assert "empty-folder/manifest.json: no manifest" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1"}\n')
    assert main(["index", "--corpus", str(bad), "--out", str(tmp_path / "i2")]) == 2
    assert f"{bad}:1: missing field 'contents'" in capsys.readouterr().err
    assert not (tmp_path / "i2").exists()  # nothing half-written left behind


@pytest.mark.slow
def test_rollout_command_prints_the_trajectory(tmp_path, capsys):
    assert main(["index", "--corpus", "wiki-vital", "--encoder", "bm25", "--out", str(tmp_path / "idx")]) == 0
    argv = ["rollout", "--model", "tiny-qwen2", "--index", str(tmp_path / "idx"),
            "--question", "Who painted the Mona Lisa?",
            "--gold", "Leonardo da Vinci", "--max-turns", "1", "--max-new-tokens", "8"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[prompt: " in out and "My previous action is invalid" in out  # random weights: invalid, fed back
    assert "reward 0" in out and "tokens/s" in out


@pytest.mark.slow
def test_eval_run_uses_the_runs_own_prompt_turns_and_limits(tmp_path, monkeypatch, capsys):
    """`eval --run` rebuilds the trained run's rollout settings from its config.json (template, response prefix,
    chat, turns, token limits, top-k) and evaluates its adapter on its own held-out questions."""
    import searchr1_lite.evaluate as evaluate_mod
    from searchr1_lite.train import TrainConfig, train

    cfg = TrainConfig.load("tiny-cpu", ["questions=world:people=30", "corpus=world:people=30", "max_steps=1",
                                        "template=world-examples", "response_prefix=<think>", "chat=false",
                                        "max_turns=2", "max_new_tokens=6", "topk=2", f"output_dir={tmp_path / 'r'}"])
    run = train(cfg)
    seen = []
    real = evaluate_mod.evaluate_method

    def spy(model, tokenizer, method, datasets, retriever=None, config=None, topk=3, style=None, progress=False):
        seen.append((method, config, topk, style, {k: len(v) for k, v in datasets.items()}))
        return real(model, tokenizer, method, datasets, retriever, config, topk, style, progress)

    monkeypatch.setattr(evaluate_mod, "evaluate_method", spy)
    assert main(["eval", "--run", str(run), "--method", "rag,search", "--limit", "3"]) == 0
    assert [s[0] for s in seen] == ["rag", "search"]
    for _, config, topk, style, sizes in seen:
        assert config == cfg.rollout and topk == 2 and style == "world-examples" and sizes == {"held-out": 3}
    assert "held-out" in capsys.readouterr().out
    assert main(["eval", "--run", str(run), "--method", "search", "--limit", "2", "--max-turns", "1"]) == 0
    assert seen[-1][1].max_turns == 1 and seen[-1][1].template == "world-examples"  # a flag overrides the run's


def test_a_runs_relative_data_path_missing_here_says_where_it_came_from(tmp_path, monkeypatch, capsys):
    import json

    from searchr1_lite.train import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig.load("tiny-cpu", ["corpus=data/c.jsonl", "questions=data/q.jsonl"])
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    monkeypatch.chdir(tmp_path)  # the run was trained where data/ is; this folder has none
    assert main(["eval", "--run", str(run), "--method", "direct"]) == 2
    err = capsys.readouterr().err
    assert "data/c.jsonl: not a bundled corpus" in err and f"the name comes from {run / 'config.json'}" in err


def test_a_run_without_its_final_adapter_says_so_at_once(tmp_path, capsys):
    """A run stopped before its end has checkpoints and no adapter/: peft used to ask the hub for a repo named like
    the folder, five times over about 30 s, before it failed. Now it is named, with the resume command."""
    import json

    from searchr1_lite.train import TrainConfig

    run = tmp_path / "run"
    (run / "checkpoint-2" / "adapter").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(TrainConfig.load("tiny-cpu").to_dict()))
    for argv in (["eval", "--run", str(run), "--method", "search", "--limit", "1"],
                 ["rollout", "--run", str(run), "--question", "Who?"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{run}: no final adapter" in err and f"--config {run / 'config.json'} --resume" in err, err


@pytest.mark.slow
def test_rollout_run_samples_the_runs_own_policy_and_says_what_grpo_could_learn(tmp_path, monkeypatch, capsys):
    """`rollout --run` loads the run's adapter (or --adapter, e.g. a checkpoint's) and samples with the run's own
    settings and retriever; with --gold and --n it counts the right answers and names the run's group size."""
    import searchr1_lite.models as models_mod
    import searchr1_lite.rollout as rollout_mod
    from searchr1_lite.train import TrainConfig, train

    cfg = TrainConfig.load("tiny-cpu", ["questions=world:people=30", "corpus=world:people=30", "max_steps=1",
                                        "template=world-examples", "response_prefix=<think>", "chat=false",
                                        "max_turns=2", "max_new_tokens=6", "topk=2", "temperature=0.8",
                                        "group_size=3", f"output_dir={tmp_path / 'r'}"])
    run = train(cfg)
    loaded, sampled = [], []
    real_policy, real_rollout = models_mod.load_policy, rollout_mod.rollout

    def policy_spy(name, **kw):
        loaded.append((name, kw["adapter"]))
        return real_policy(name, **kw)

    def rollout_spy(model, tokenizer, questions, retriever, config=None, progress=False):
        sampled.append((questions, retriever, config))
        return real_rollout(model, tokenizer, questions, retriever, config, progress)

    monkeypatch.setattr(models_mod, "load_policy", policy_spy)
    monkeypatch.setattr(rollout_mod, "rollout", rollout_spy)
    argv = ["rollout", "--run", str(run), "--question", "Where was Anna Lind born?", "--gold", "Kalmar", "--n", "3",
            "--brief", "--seed", "5"]
    assert main(argv) == 0
    (questions, retriever, config), = sampled
    assert loaded == [(cfg.policy.model, str(run / "adapter"))]
    assert questions == ["Where was Anna Lind born?"] * 3 and config == dataclasses.replace(cfg.rollout, seed=5)
    assert retriever.corpus.name == load_world("world:people=30").corpus.name
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[:3]] == ["1/3", "2/3", "3/3"] and "reward 0" in out[0]
    assert out[3].startswith("right: 0 of 3 (0.00)") and "group of 3 samples" in out[4]  # the run's group_size
    checkpoint = str(run / "checkpoint-1" / "adapter")
    assert main([*argv, "--adapter", checkpoint, "--temperature", "0", "--group-size", "8"]) == 0
    assert loaded[-1] == (cfg.policy.model, checkpoint) and sampled[-1][2].temperature == 0.0
    assert "group of 8 samples" in capsys.readouterr().out
    assert main(["rollout", "--model", "tiny-qwen2", "--question", "q"]) == 2  # no retriever: named, not a traceback
    assert "rollout needs --index DIR, --url URL or --run RUN" in capsys.readouterr().err


def test_the_solve_rate_line_counts_right_answers_as_the_reward_does():
    from searchr1_lite.cli import _solve_rate_summary

    text = _solve_rate_summary(["Paris", "the paris", "Rome", None], ["Paris"], 4)
    assert text.startswith("right: 2 of 4 (0.50); answers: 'Paris' x1, 'the paris' x1, 'Rome' x1, None x1")
    assert text.endswith("group of 4 samples has a right and a wrong answer, the only kind with an advantage to "
                         "learn from, with chance 0.88 at this rate")  # 1 - 2 * 0.5 ** 4


@pytest.mark.slow
def test_ctrl_c_answers_at_once_and_twice_stops_now_with_a_checkpoint_that_resumes(tmp_path):
    """A real `searchr1-lite train` process: the first SIGINT is acknowledged at once, the second stops it within
    seconds with exit code 130 and a line naming the last checkpoint and the command that resumes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from searchr1_lite.checkpoint import latest_checkpoint

    run, err = tmp_path / "run", tmp_path / "stderr.txt"
    argv = ["train", "--config", "tiny-cpu", "--set", f"output_dir={run}", "max_steps=200"]
    # each update 3 s longer: the first Ctrl-C goes in just as a step starts, so the second lands inside that step,
    # never after it (the run would then have stopped by itself, after the step the first one lets finish)
    slow = ("import sys, time; import searchr1_lite.grpo as g; real = g.grpo_step; "
            "g.grpo_step = lambda *a, **k: (time.sleep(3), real(*a, **k))[1]; "
            "from searchr1_lite.cli import run; sys.argv = ['searchr1-lite', *sys.argv[1:]]; run()")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", slow, *argv], stdout=subprocess.DEVNULL, stderr=stderr,
                                env=env)

        def wait_for(condition, seconds):
            deadline = time.monotonic() + seconds
            while not condition() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            return condition()

        try:
            pointer = run / "latest"  # written last, after step 2's row and checkpoint: step 3 begins
            assert wait_for(lambda: pointer.exists() and pointer.read_text() == "checkpoint-2", 300), err.read_text()
            proc.send_signal(signal.SIGINT)
            assert wait_for(lambda: "Ctrl-C again to stop now" in err.read_text(), 10)
            proc.send_signal(signal.SIGINT)
            start = time.monotonic()
            assert proc.wait(timeout=20) == 130 and time.monotonic() - start < 10
        finally:
            proc.kill()
    text = err.read_text()
    checkpoint = latest_checkpoint(run)
    assert "Traceback" not in text and f"Last checkpoint: {checkpoint}" in text and "--resume" in text
    assert "stopped now" in text  # by the second signal, not by the first one's end of step
    done = int(checkpoint.name.split("-")[1])
    assert main(["train", "--config", "tiny-cpu", "--set", f"output_dir={run}", f"max_steps={done + 1}",
                 "--resume"]) == 0
    assert (run / "adapter" / "adapter_model.safetensors").exists()


def test_bad_inputs_get_an_error_in_the_users_terms_and_exit_2(tmp_path, capsys):
    """Exit code 2, one line that says what was wrong and what to do, no traceback, nothing lost."""
    assert main(["search", "--url", "localhost:8000", "q"]) == 2
    assert "has no scheme: write http://localhost:8000" in capsys.readouterr().err
    assert main(["search", "--url", "http://localhost:99999", "q"]) == 2  # was: "connection refused" after 5 tries
    assert "'http://localhost:99999': Port out of range 0-65535 (the port" in capsys.readouterr().err
    assert main(["index", "--corpus", "wiki-vital", "--out", str(tmp_path / "idx")]) == 0
    manifest = (tmp_path / "idx" / "manifest.json").read_text()
    assert main(["index", "--corpus", "wiki-vital", "--out", str(tmp_path / "idx")]) == 2
    assert "is not empty (an index is there?): pass --force" in capsys.readouterr().err
    assert (tmp_path / "idx" / "manifest.json").read_text() == manifest
    assert main(["train", "--config", "tiny-cpu", "--set", f"output_dir={tmp_path / 'none'}", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume in" in err and "Traceback" not in err and not (tmp_path / "none").exists()
    assert main(["index", "--corpus", "wiki-vital", "--out", str(tmp_path / "idx"), "--force"]) == 0  # asked for
    with pytest.raises(SystemExit) as usage:  # argparse's own usage error, before any work
        main(["demo", "--quick", "--long"])
    assert usage.value.code == 2 and "argument --long: not allowed with argument --quick" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["demo", "--long", "--author-chain"])
    err = capsys.readouterr().err
    assert usage.value.code == 2 and "argument --author-chain: not allowed with argument --long" in err


def test_mistakes_in_flags_are_caught_before_any_work(tmp_path, capsys):
    """Each of these used to end in a traceback, a late failure or a silent loss (a CLI review, 2026-12-06)."""
    from searchr1_lite.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--set", "max_steps=1", "--set", "output_dir=x", "lr_typo=1"])
    assert args.set == ["max_steps=1", "output_dir=x", "lr_typo=1"]  # a second --set used to replace the first
    assert parser.parse_args(["rollout", "--question", "q", "--gold", "a", "--gold", "b"]).gold == ["a", "b"]
    for argv, says in [(["search", "--index", "i", "-k", "0", "q"], "argument -k/--topk: must be at least 1, not 0"),
                       (["serve", "--index", "i", "--port", "70000"], "a port is 1 to 65535, not 70000"),
                       (["rollout", "--question", "q", "--n", "0"], "argument --n: must be at least 1, not 0"),
                       # the option's name, not the config key's (the config's least, one source)
                       (["rollout", "--question", "q", "-k", "0"], "argument -k/--topk: must be at least 1, not 0"),
                       (["rollout", "--question", "q", "--group-size", "0"], "--group-size: must be at least 1"),
                       (["eval", "--max-turns", "-1"], "argument --max-turns: must be at least 0, not -1"),
                       (["eval", "--max-new-tokens", "0"], "argument --max-new-tokens: must be at least 1, not 0"),
                       (["eval", "--limit", "-1"], "argument --limit: must be at least 1, not -1"),
                       (["demo", "--steps", "-1"], "argument --steps: must be at least 1, not -1"),
                       (["demo", "--budget-minutes", "-5"], "must be at least 0, not -5"),
                       # an unknown option: the subcommand's usage, and the option meant
                       (["train", "--out", "runs/x"], "usage: searchr1-lite train"),
                       (["train", "--out", "runs/x"], "--out: train takes config keys with --set, e.g. --set output_d"),
                       (["train", "--lr=3"], "--lr: train takes config keys with --set, e.g. --set learning_rate="),
                       (["train", "--sett", "x=1"], "unrecognized arguments: --sett x=1 (--sett: did you mean --set?)"),
                       (["demo", "--quik"], "(--quik: did you mean --quick?)")]:
        with pytest.raises(SystemExit) as usage:
            main(argv)
        assert usage.value.code == 2 and says in capsys.readouterr().err, argv
    (tmp_path / "file.jsonl").write_text("{}\n")
    (tmp_path / "empty-run").mkdir()
    (tmp_path / "empty-run" / "metrics.jsonl").write_text("")
    for argv, says in [(["index", "--corpus", "wiki-vital", "--out", str(tmp_path / "file.jsonl"), "--force"],
                        "is a file: an index is a folder"),
                       (["eval", "--method", "direct, dirct"], "--method 'dirct': choose from direct, rag, search"),
                       (["eval", "--method", "direct", "--datasets", "missing.jsonl"],
                        "test set 'missing.jsonl': no such file"),
                       # an index holds its corpus and encoder: these flags would be ignored
                       (["serve", "--index", str(tmp_path), "--corpus", "x.jsonl"], "--corpus go with --faiss only"),
                       (["eval", "--method", "direct", "--out", str(tmp_path)], "name a CSV file in a folder that"),
                       (["eval", "--out", str(tmp_path / "no" / "t.csv")], "name a CSV file in a folder that"),
                       (["plot", str(tmp_path / "empty-run"), "--out", str(tmp_path / "p.png")], "nothing to plot"),
                       # a table once replaced any file named as --out; a figure's --out named matplotlib's formats
                       (["eval", "--method", "direct", "--out", str(tmp_path / "file.jsonl")],
                        "file.jsonl exists and is not a .csv: name a new file"),
                       (["plot", str(tmp_path / "empty-run"), "--out", str(tmp_path / "file.jsonl")],
                        "a figure is .png, .pdf, .svg or another format matplotlib writes (")]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, (argv, err)
    assert (tmp_path / "file.jsonl").read_text() == "{}\n"


def test_data_mistakes_are_named_where_they_are_made(tmp_path, capsys):
    """A corpus row's JSON error at its column; an unknown --set key blamed on --set, not on the YAML file; a
    train config whose index and corpus disagree stopped before the model loads (the corpus is not ignored)."""
    import json

    bad = tmp_path / "bad.jsonl"
    row = json.dumps({"id": "1", "contents": '"Page"\nText.'})
    bad.write_text(row + "\n" + row[:-1] + ",}\n")  # line 2: a trailing comma before the closing brace
    assert main(["index", "--corpus", str(bad), "--out", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: not valid JSON" in err and f"at column {len(row) + 1}" in err and "Traceback" not in err
    config = tmp_path / "mine.yaml"
    config.write_text("optim:\n  max_steps: 2\n")
    assert main(["train", "--config", str(config), "--set", "max_step=1"]) == 2
    err = capsys.readouterr().err
    assert "--set: unknown key 'max_step' (did you mean 'max_steps'?)" in err and str(config) not in err
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "contents": f'"Page {i}"\nFact {i}.'}) + "\n"
                              for i in range(20)))
    assert main(["index", "--corpus", str(corpus), "--out", str(tmp_path / "idx")]) == 0
    argv = ["train", "--config", "tiny-cpu", "--set", f"index={tmp_path / 'idx'}", "corpus=wiki-vital",
            f"output_dir={tmp_path / 'run'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"data.index {tmp_path / 'idx'} and data.corpus 'wiki-vital' disagree" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_plot_says_the_file_it_wrote(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": s, "reward_mean": s / 4, "em": s / 4, "response_length_mean": 50.0, "searches_mean": 1.0,
             "valid_action_rate": 1.0, "kl": 0.0, "entropy": 1.0, "clip_fraction": 0.0} for s in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["plot", str(run), "--out", str(tmp_path / "dyn")]) == 0
    assert f"wrote {tmp_path / 'dyn.png'}" in capsys.readouterr().out
    assert (tmp_path / "dyn.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(run), "--out", str(tmp_path / "dyn.eps")]) == 0  # any format matplotlib writes
    assert (tmp_path / "dyn.eps").read_bytes()[:4] == b"%!PS"
    rows[1]["reward_mean"] = "high"  # edited by hand: once a TypeError from inside matplotlib
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["plot", str(run), "--out", str(tmp_path / "dyn2")]) == 2
    assert "metrics.jsonl, row 2: reward_mean is 'high', not a number" in capsys.readouterr().err
    assert not (tmp_path / "dyn2.png").exists()


def test_every_subcommand_help_shows_its_defaults_and_every_option_has_help(capsys):
    import argparse

    from searchr1_lite.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        assert parser.description and " ".join(parser.description.split()) in text, f"{name}: no summary atop"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help text"
            default = action.default
            if default is not None and default is not False and default not in ("", [], argparse.SUPPRESS):
                assert f"(default: {default})" in text, f"{name} {action.option_strings}: default not shown"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    train_help = capsys.readouterr().out
    from searchr1_lite.config import TrainConfig

    train_help = train_help[train_help.index("  policy: "):]  # the list, not the line above it
    defaults = TrainConfig().to_dict()
    for section, values in defaults.items():  # every config key with its default, written as --set takes it back
        for key, value in (values.items() if isinstance(values, dict) else [(section, values)]):
            shown = re.search(rf"\b{key}=(\S*?)(,|$)", train_help, re.M)
            assert shown, f"train --help: config key {key} missing"
            path = key if key == section else f"{section}.{key}"
            back = TrainConfig.load(None, [f"{path}={shown[1]}"]).to_dict()
            assert (back[section] if key == section else back[section][key]) == value, (key, shown[1])


def test_quiet_by_default_and_verbose_on_request(monkeypatch):
    """A command hides third-party deprecation notices (FutureWarnings raised in transformers', torch's or peft's
    modules, transformers' own log) unless --verbose asks for them; a FutureWarning from any other code still shows.
    The notices are made here, as transformers makes one, so that the test does not wait on a library to deprecate
    something we call (we call nothing deprecated: tests/test_models.py)."""
    import warnings

    import searchr1_lite.cli as cli

    def command(args):
        third_party = {"__name__": "transformers.modeling_utils"}  # warnings filters match the raising module's name
        exec(compile("import warnings\nwarnings.warn('`x` is deprecated', FutureWarning)", "modeling_utils.py",
                     "exec"), third_party)
        warnings.warn("ours, about to change", FutureWarning)

    monkeypatch.setattr(cli, "cmd_index", command)
    shown = {}
    command_line = ["index", "--corpus", "c.jsonl", "--out", "idx"]
    for where, argv in {"before": ["--verbose"] + command_line, "after": command_line + ["-v"],
                        "none": command_line}.items():
        monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(argv) == 0
        shown[where] = sorted(str(w.message) for w in caught)
        assert os.environ.get("TRANSFORMERS_VERBOSITY") == (None if where != "none" else "error")
    assert shown["before"] == shown["after"] == ["`x` is deprecated", "ours, about to change"]
    assert shown["none"] == ["ours, about to change"]


def test_an_empty_corpus_and_an_unreachable_test_set_are_named(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["index", "--corpus", str(empty), "--out", str(tmp_path / "idx")]) == 2
    assert f"{empty}: no passages" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is outside this machine: offline, as CI is
    assert main(["eval", "--method", "direct", "--datasets", "nq", "--limit", "2", "--model", "tiny-qwen2"]) == 2
    err = capsys.readouterr().err
    assert "test set 'nq' comes from the hub" in err and "--datasets fanoutqa" in err and "Traceback" not in err


def test_fanoutqa_with_an_index_on_another_corpus_says_why_no_question_is_left(tmp_path, capsys):
    import json

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "contents": f'"Page {i}"\nFact number {i}.'}) + "\n"
                              for i in range(20)))
    assert main(["index", "--corpus", str(corpus), "--out", str(tmp_path / "idx")]) == 0
    argv = ["eval", "--method", "rag", "--index", str(tmp_path / "idx"), "--model", "tiny-qwen2", "--limit", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no FanOutQA question is answerable from corpus" in err and "wiki-vital" in err


def test_a_newcomers_path_mistakes_are_one_line_each_and_exit_2(tmp_path, capsys):
    """Mistakes a helper's audit made of the command line, each once a traceback (exit 1) or a message that named
    neither the file nor the fix: a folder as --config, a config that is not UTF-8, an --out inside a file, a
    world spec with a typo, a question file that is not there."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    (tmp_path / "latin1.yaml").write_bytes("# caf\xe9\noptim:\n  max_steps: 1\n".encode("latin-1"))
    (tmp_path / "a-file").write_text("x")
    cases = [(["train", "--config", str(tmp_path / "run")],
              f"config '{tmp_path / 'run'}' is a folder; give a YAML file, e.g. {tmp_path / 'run' / 'config.json'}"),
             (["train", "--config", str(tmp_path / "latin1.yaml")], "latin1.yaml: not UTF-8 text (byte 5)"),
             (["index", "--corpus", "world:seed=1,people=30", "--out", str(tmp_path / "a-file" / "idx")],
              "a-file is a file, not a folder; pick another --out"),
             (["index", "--corpus", "world:seeed=1", "--out", str(tmp_path / "w")],
              "unknown key 'seeed' (did you mean 'seed'?)"),
             (["train", "--config", "tiny-cpu", "--set", f"questions={tmp_path / 'nope.jsonl'}",
               f"output_dir={tmp_path / 'r'}"], "nope.jsonl: no such question file")]
    for argv, says in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "r").exists()  # the failed run left no folder


def test_an_index_cut_short_a_bom_and_a_port_word_are_named(tmp_path, capsys):
    """A BM25 index with a file missing names the folder and the command that rebuilds it; a corpus saved with a
    byte-order mark (Windows editors) reads as without one; a port given as a word says what a port is."""
    assert main(["index", "--corpus", "world:seed=1,people=30", "--out", str(tmp_path / "idx")]) == 0
    (tmp_path / "idx" / "bm25" / "params.index.json").unlink()
    assert main(["search", "--index", str(tmp_path / "idx"), "q"]) == 2
    err = capsys.readouterr().err
    assert "idx/bm25: unreadable BM25 index" in err and "rebuild it: searchr1-lite index --corpus world:seed=1" in err
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b'{"id": "1", "contents": "\\"Page\\"\\nText."}\n')
    assert main(["index", "--corpus", str(bom), "--out", str(tmp_path / "bom-idx")]) == 0
    assert "indexed 1 passages" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        main(["serve", "--index", str(tmp_path / "idx"), "--port", "http"])
    assert usage.value.code == 2 and "a port is a number, 1 to 65535, not 'http'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as shown:
        main(["--version"])
    assert shown.value.code == 0 and capsys.readouterr().out.startswith("searchr1-lite ")


def test_an_adapter_that_is_not_one_is_named_before_the_model_loads(tmp_path, capsys):
    """peft named a missing folder only after the model had loaded, as a hub id it could not find."""
    (tmp_path / "not-one").mkdir()
    (tmp_path / "no-weights").mkdir()
    (tmp_path / "no-weights" / "adapter_config.json").write_text("{}")
    for adapter, says in [(str(tmp_path / "nope"), "nope: no such folder; a saved LoRA adapter is a run's"),
                          (str(tmp_path / "not-one"), "not-one: no adapter_config.json in it"),
                          (str(tmp_path / "no-weights"), "no-weights: no adapter_model.safetensors in it")]:
        assert main(["rollout", "--adapter", adapter, "--question", "q", "--url", "http://127.0.0.1:9"]) == 2
        assert says in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the note is for a CPU")
def test_train_without_a_config_on_a_cpu_says_what_the_paper_settings_cost(tmp_path, capsys):
    """A newcomer's first `searchr1-lite train` took 10.5 min and 21 GB a step on 2 cores; it says so before starting
    (here a data mistake then stops it in seconds)."""
    assert main(["train", "--set", f"output_dir={tmp_path / 'run'}", f"questions={tmp_path / 'none.jsonl'}"]) == 2
    err = capsys.readouterr().err
    assert "no --config, so the paper's rollout" in err and "--config world-cpu or smollm2-cpu fit a CPU" in err
    assert main(["train", "--config", "tiny-cpu", "--set", f"output_dir={tmp_path / 'run'}",
                 f"questions={tmp_path / 'none.jsonl'}"]) == 2
    assert "paper's settings" not in capsys.readouterr().err


def test_python_m_searchr1_lite_is_the_command():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "searchr1_lite", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("searchr1-lite "), done.stderr[-500:]


def test_every_entry_point_quiets_the_tokenizers_fork_warning(monkeypatch):
    """The installed `searchr1-lite` script calls run() alone (no `__main__` block), so run() sets the default; a
    value the user set is kept."""
    import os

    from searchr1_lite.cli import run

    monkeypatch.setattr("sys.argv", ["searchr1-lite", "--version"])
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    with pytest.raises(SystemExit):
        run()
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    with pytest.raises(SystemExit):
        run()
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
