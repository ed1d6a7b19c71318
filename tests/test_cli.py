from searchr1_lite.cli import main


def test_index_then_search_prints_the_mona_lisa_first(tmp_path, capsys):
    assert main(["index", "--corpus", "wiki-vital", "--encoder", "bm25", "--out", str(tmp_path / "idx")]) == 0
    assert main(["search", "--index", str(tmp_path / "idx"), "Who painted the Mona Lisa?", "-k", "3"]) == 0
    out = capsys.readouterr().out
    first_hit = [line for line in out.splitlines() if line.strip().startswith("1.")][0]
    assert "Mona Lisa" in first_hit


def test_errors_are_one_clear_line_and_exit_2(tmp_path, capsys):
    assert main(["search", "--index", str(tmp_path / "nowhere"), "q"]) == 2
    err = capsys.readouterr().err
    assert "no manifest" in err and "searchr1-lite index" in err and "Traceback" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1"}\n')
    assert main(["index", "--corpus", str(bad), "--out", str(tmp_path / "i2")]) == 2
    assert f"{bad}:1: missing field 'contents'" in capsys.readouterr().err
    assert not (tmp_path / "i2").exists()  # nothing half-written left behind


def test_rollout_command_prints_the_trajectory(tmp_path, capsys):
    assert main(["index", "--corpus", "wiki-vital", "--encoder", "bm25", "--out", str(tmp_path / "idx")]) == 0
    argv = ["rollout", "--model", "tiny-qwen2", "--index", str(tmp_path / "idx"), "--question", "Who painted the Mona Lisa?",
            "--gold", "Leonardo da Vinci", "--max-turns", "1", "--max-new-tokens", "8"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[prompt: " in out and "My previous action is invalid" in out  # random weights: invalid, fed back
    assert "reward 0" in out and "tokens/s" in out
