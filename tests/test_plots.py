"""Dynamics plots render the expected series (read back from the figure, not by eye); the CLI writes a PNG."""

import json

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from searchr1_lite.cli import main  # noqa: E402
from searchr1_lite.plots import browse_samples, load_metrics, plot_dynamics, smooth  # noqa: E402


def _run(tmp_path, name, rewards, lengths):
    run = tmp_path / name
    run.mkdir()
    rows = [{"step": i + 1, "reward_mean": r, "response_length_mean": n, "searches_mean": 0.5 * i}
            for i, (r, n) in enumerate(zip(rewards, lengths))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "samples.jsonl").write_text(json.dumps({"step": 2, "question": "Q<1>", "answer": "a", "gold": ["a"],
                                                   "em": 1.0, "text": "<answer> a </answer>", "ids": [1, 2],
                                                   "gen_mask": [0, 1], "prompt_len": 1}) + "\n")
    return run


def test_runs_overlaid_with_raw_and_smoothed_series(tmp_path):
    a = _run(tmp_path, "mask", [0.0, 0.5, 1.0], [30, 20, 40])
    b = _run(tmp_path, "nomask", [0.0, 0.1, 0.2], [30, 60, 90])
    fig = plot_dynamics({"mask on": a, "mask off": b}, out=tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 1000
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]  # in words; absent metrics are left out
    assert titles == ["reward (mean of the samples)", "tokens written per answer", "searches per question"]
    assert [ax.get_ylabel() for ax in fig.axes[:3]] == ["reward_mean", "response_length_mean", "searches_mean"]
    reward_ax = fig.axes[0]
    raw, line = reward_ax.lines[0], reward_ax.lines[1]
    assert list(raw.get_ydata()) == [0.0, 0.5, 1.0] and list(line.get_ydata()) == pytest.approx(smooth([0.0, 0.5, 1.0]))
    assert line.get_label() == "mask on" and reward_ax.lines[3].get_label() == "mask off"
    assert list(fig.axes[1].lines[2].get_ydata()) == [30, 60, 90]
    assert raw.get_linestyle() == "-" and raw.get_marker() == "o"  # the points, joined: the average lags on few steps
    low, high = fig.axes[2].get_ylim()  # searches 0, 0.5, 1: the axis as drawn; a flatter series gets half a search
    assert low <= 0 and high >= 1
    flat = _run(tmp_path, "flat", [0.1, 0.2], [10, 12])
    (flat / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "searches_mean": v}) + "\n"
                                                for i, v in enumerate([1.0, 1.06, 1.03], 1)))
    low, high = plot_dynamics(flat, metrics=["searches_mean"]).axes[0].get_ylim()
    assert high - low >= 0.5 and low <= 1.0 and high >= 1.06
    assert smooth([1.0, 0.0], 0.3) == [1.0, 0.7]


def _lines(ax, label):
    return [line for line in ax.lines if line.get_label() == label]


def test_a_phase_2_goes_on_from_phase_1_with_its_evaluations_kept_step_and_collapse_warnings(tmp_path):
    """The demo's curriculum: phase 2 (steps 1-4 of its own) is drawn after phase 1's 3 steps, with its dev
    evaluations as squares, the step it kept and a step where a collapse check fired, each where it happened."""
    import pandas as pd

    one = pd.DataFrame({"step": [1, 2, 3], "em": [0.1, 0.2, 0.3]})
    two = pd.DataFrame({"step": [1, 2, 3, 4], "em": [0.0, 0.5, 0.4, 0.9], "eval_em": [None, 0.6, None, 0.7],
                        "collapse": [None, None, "reward_fell at step 3", None]})
    fig = plot_dynamics({"phase 1": one, "phase 2": two}, metrics=["em"], continues={"phase 2": "phase 1"},
                        kept={"phase 2": 2})
    ax = fig.axes[0]
    assert list(_lines(ax, "phase 1")[0].get_xdata()) == [1, 2, 3]
    assert list(_lines(ax, "phase 2")[0].get_xdata()) == [4, 5, 6, 7]
    [start] = _lines(ax, "phase 2 starts")
    assert list(start.get_xdata()) == [3, 3]
    [dev] = _lines(ax, "phase 2: dev questions, greedy")
    assert list(dev.get_xdata()) == [5, 7] and list(dev.get_ydata()) == [0.6, 0.7]
    [kept] = _lines(ax, "phase 2: kept its step 2")
    assert list(kept.get_xdata()) == [5, 5]
    [fired] = _lines(ax, "a collapse check fired")
    assert list(fired.get_xdata()) == [6, 6]
    assert {t.get_text() for t in fig.legends[0].get_texts()} >= {"phase 2 starts", "a collapse check fired"}
    three = plot_dynamics({"phase 1": one, "phase 2": two, "phase 3": one}, metrics=["em"],
                          continues={"phase 2": "phase 1", "phase 3": "phase 2"})  # after both: 3 + 4 steps
    assert list(_lines(three.axes[0], "phase 3")[0].get_xdata()) == [8, 9, 10]
    backwards = plot_dynamics({"phase 1": one, "phase 2": two, "phase 3": one}, metrics=["em"],
                              continues={"phase 3": "phase 2", "phase 2": "phase 1"})  # listed last first: the same
    assert list(_lines(backwards.axes[0], "phase 3")[0].get_xdata()) == [8, 9, 10]
    with pytest.raises(ValueError, match="goes on from itself"):
        plot_dynamics({"a": one, "b": two}, metrics=["em"], continues={"a": "b", "b": "a"})
    empty = pd.DataFrame({"step": [], "em": []})  # a run with no step yet: what follows it starts at 0, kept or not
    fig = plot_dynamics({"none yet": empty, "phase 2": two}, metrics=["em"], continues={"phase 2": "none yet"},
                        kept={"none yet": 1, "phase 2": 2})
    assert list(_lines(fig.axes[0], "phase 2")[0].get_xdata()) == [1, 2, 3, 4]
    assert plot_dynamics({"no rows": pd.DataFrame([]), "phase 1": one}, metrics=["em"], kept={"no rows": 1})
    minutes = plot_dynamics({"phase 1": one.assign(step_seconds=60.0), "phase 2": two.assign(step_seconds=30.0)},
                            metrics=["em"], continues={"phase 2": "phase 1"}, x="minutes")
    assert list(_lines(minutes.axes[0], "phase 2")[0].get_xdata()) == [3.5, 4.0, 4.5, 5.0]  # after 3 one-minute steps
    with pytest.raises(ValueError, match="no step_seconds"):  # minutes need the steps' timings: said, not a KeyError
        plot_dynamics({"phase 1": one}, metrics=["em"], x="minutes")
    with pytest.raises(ValueError, match="goes on from 'phase 3'"):
        plot_dynamics({"phase 1": one, "phase 2": two}, metrics=["em"], continues={"phase 2": "phase 3"})


def test_the_cli_draws_a_run_after_the_one_whose_adapter_it_started_from(tmp_path, capsys, monkeypatch):
    """`searchr1-lite plot runs/demo/train runs/demo/train-two-hop`: the links come from the run folders themselves
    (phase 2's config names phase 1's adapter; best.json the step it kept), as in the demo's report."""
    from searchr1_lite.config import TrainConfig
    from searchr1_lite.plots import run_links

    one, two, other = (_run(tmp_path, n, [0.1, 0.2, 0.3], [10, 12, 14]) for n in ("train", "train-two-hop", "b"))
    (one / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    (two / "config.json").write_text(json.dumps(TrainConfig().updated({"adapter": str(one / "adapter")}).to_dict()))
    (two / "best.json").write_text(json.dumps({"step": 2}))
    assert run_links([one, two, other]) == ({str(two): str(one)}, {str(two): 2})
    assert run_links([two, other]) == ({}, {str(two): 2})  # what it went on from is not drawn: no link
    monkeypatch.chdir(tmp_path)  # as `make demo` writes it: runs/demo/train/adapter, relative to where it ran
    (two / "config.json").write_text(json.dumps(TrainConfig().updated({"adapter": "train/adapter"}).to_dict()))
    monkeypatch.chdir(other)  # plotted from elsewhere: the path no longer resolves; the folder's name still says
    assert run_links([one, two])[0] == {str(two): str(one)}
    fig = plot_dynamics([str(one), str(two)], metrics=["reward_mean"], continues=run_links([one, two])[0])
    assert list(_lines(fig.axes[0], str(two))[0].get_xdata()) == [4, 5, 6]
    assert main(["plot", str(one), str(two), "--out", str(tmp_path / "p.png")]) == 0
    assert f"{two} drawn after {one}, whose adapter it started from" in capsys.readouterr().out


def test_cli_plot_and_errors(tmp_path, capsys):
    a = _run(tmp_path, "r1", [0.1, 0.2], [10, 12])
    assert main(["plot", str(a), "--out", str(tmp_path / "p.png")]) == 0 and (tmp_path / "p.png").exists()
    assert main(["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "q.png")]) == 2
    assert "no metrics" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        load_metrics(tmp_path)


def test_sample_browser_filters_and_escapes(tmp_path):
    run = _run(tmp_path, "s", [0.0], [1])
    page = browse_samples(run, min_reward=1.0)
    assert "Q&lt;1&gt;" in page and "&lt;answer&gt;" in page
    assert browse_samples(run, step=5) == "<p>no samples match</p>"


def test_panels_say_what_a_flat_or_partial_series_is():
    """A panel where every run logged 0 says so (an all-zero KL is beta = 0, not a broken axis); one with no values at
    all does not; and the legend takes a label from whichever panel has it (squares only where a run evaluated)."""
    import pandas as pd

    a = pd.DataFrame({"step": [1, 2], "kl": [0.0, 0.0], "em": [0.1, 0.3], "eval_em": [None, 0.5],
                      "entropy": [None, None]})
    fig = plot_dynamics({"a": a}, metrics=["kl", "entropy", "em"])
    said = [[t.get_text() for t in ax.texts] for ax in fig.axes[:3]]
    assert said == [["0 at every step"], [], []]
    assert "a: dev questions, greedy" in [t.get_text() for t in fig.legends[0].get_texts()]
    with pytest.raises(ValueError, match="'step' or 'minutes'"):
        plot_dynamics({"a": a}, x="steps")


def test_the_sample_browser_shows_the_saved_counts_gold_and_em(tmp_path):
    """With a tokenizer the browser shades each span and says what the row saved: the trajectory comes back without
    its turns, so counting them there would print "searches 0" for every sample (it did, until 2026-12-07)."""
    from searchr1_lite.models import load_tokenizer

    tok = load_tokenizer("tiny-qwen2")
    prompt, search = tok("Q: who?")["input_ids"], tok(" <search> x </search>")["input_ids"]
    row = {"step": 4, "question": "who?", "answer": None, "gold": ["Vunal Zessi"], "em": 0.0, "text": "",
           "ids": prompt + search, "gen_mask": [0] * len(prompt) + [1] * len(search), "prompt_len": len(prompt)}
    run = tmp_path / "r"
    run.mkdir()
    (run / "samples.jsonl").write_text(json.dumps({**row, "searches": 1, "invalid_actions": 0}) + "\n"
                                       + json.dumps(row) + "\n")  # the second as runs before 2026-12-07 saved it
    page = browse_samples(run, tokenizer=tok)
    assert page.count("searches 1 · invalid actions 0 · no answer · gold &#x27;Vunal Zessi&#x27; · trained on") == 1
    assert page.count("step 4 · EM 0</p>") == 2
    assert page.count("searches not saved") == 1 and "searches 0" not in page and "None" not in page
    assert "background:#d9f2d9" in page  # the generated span, shaded


def test_a_run_still_writing_is_read_without_its_cut_last_line(tmp_path):
    """Lesson 05 browses a run while lesson 04's trains it; the demo's report reads its runs: a last line cut by the
    writer (or a kill) is skipped, as checkpoint.read_rows does, not a JSONDecodeError."""
    from searchr1_lite.report import collapse_lines

    run = _run(tmp_path, "live", [0.0, 0.5], [10, 12])
    for name in ("samples.jsonl", "metrics.jsonl"):
        with open(run / name, "a") as f:
            f.write('{"step": 3, "question": "Q<')
    assert "Q&lt;1&gt;" in browse_samples(run)
    lines, found = collapse_lines({"live": run})
    assert found == {"live": []} and any("none fired in live/metrics.jsonl" in line for line in lines)


def test_cli_eval_direct_on_the_offline_set(capsys):
    assert main(["eval", "--model", "tiny-qwen2", "--method", "direct", "--datasets", "fanoutqa", "--limit", "2",
                 "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "fanoutqa" in out and "avg" in out and "direct" in out
    assert main(["eval", "--model", "tiny-qwen2", "--method", "search", "--datasets", "fanoutqa"]) == 2
