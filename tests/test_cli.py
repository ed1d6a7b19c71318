import pytest

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

    def spy(model, tokenizer, method, datasets, retriever=None, config=None, topk=3, style=None):
        seen.append((method, config, topk, style, {k: len(v) for k, v in datasets.items()}))
        return real(model, tokenizer, method, datasets, retriever, config, topk, style)

    monkeypatch.setattr(evaluate_mod, "evaluate_method", spy)
    assert main(["eval", "--run", str(run), "--method", "rag,search", "--limit", "3"]) == 0
    assert [s[0] for s in seen] == ["rag", "search"]
    for _, config, topk, style, sizes in seen:
        assert config == cfg.rollout and topk == 2 and style == "world-examples" and sizes == {"held-out": 3}
    assert "held-out" in capsys.readouterr().out
    assert main(["eval", "--run", str(run), "--method", "search", "--limit", "2", "--max-turns", "1"]) == 0
    assert seen[-1][1].max_turns == 1 and seen[-1][1].template == "world-examples"  # a flag overrides the run's
