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
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["reward_mean", "response_length_mean", "searches_mean"]  # absent metrics are left out
    reward_ax = fig.axes[titles.index("reward_mean")]
    raw, line = reward_ax.lines[0], reward_ax.lines[1]
    assert list(raw.get_ydata()) == [0.0, 0.5, 1.0] and list(line.get_ydata()) == pytest.approx(smooth([0.0, 0.5, 1.0]))
    assert line.get_label() == "mask on" and reward_ax.lines[3].get_label() == "mask off"
    assert list(fig.axes[1].lines[2].get_ydata()) == [30, 60, 90]
    assert smooth([1.0, 0.0], 0.3) == [1.0, 0.7]


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
