"""Inputs from users: bad files get an error naming the file, line or key and the fix; loading never unpickles."""

import ast
import json
import pickle
import re
from pathlib import Path

import pytest

from searchr1_lite.data import read_qa_jsonl
from searchr1_lite.offline import OfflinePackageMissing, package_file

PACKAGE = Path(__file__).resolve().parents[1] / "searchr1_lite"


@pytest.mark.parametrize("line, message", [
    ('{"question": "Who?", "golden_answers": ["A"]', ":2: not valid JSON"),
    ('{"golden_answers": ["A"]}', ":2: 'question' must be a non-empty string"),
    ('{"question": "", "golden_answers": ["A"]}', ":2: 'question' must be a non-empty string"),
    ('{"question": "Who?", "golden_answers": 42}', ":2: 'golden_answers' must be a non-empty list of strings"),
    ('{"question": "Who?", "golden_answers": [{"a": 1}]}', ":2: 'golden_answers' must be a non-empty list of strings"),
    ('{"question": "Who?", "golden_answers": []}', ":2: 'golden_answers' must be a non-empty list of strings"),
    ('["a", "list"]', r':2: expected an object, \{"question": \.\.\., "golden_answers": \[\.\.\.\]\}, got a JSON list'),
    ('"a string"', ":2: expected an object, .* got a JSON str"),
])
def test_malformed_question_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "Who wrote it?", "golden_answers": ["Ann"]}\n' + line + "\n")
    with pytest.raises(ValueError, match=str(path).replace("\\", "\\\\") + message):
        read_qa_jsonl(path)


def test_a_missing_offline_package_names_itself_and_the_fix():
    with pytest.raises(OfflinePackageMissing, match=r"'no-such-dist'.*Fix: python -m searchr1_lite.offline"):
        package_file("no-such-dist", "model/config.json")


def _calls(tree, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
            yield node


@pytest.mark.parametrize("source", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_module_can_unpickle_a_user_file(source):
    """torch.load only with weights_only=True, np.load never with allow_pickle=True, no pickle-family imports."""
    tree = ast.parse(source.read_text())
    for call in _calls(tree, "load"):
        owner = getattr(call.func.value, "id", None)
        kw = {k.arg: k.value for k in call.keywords}
        if owner == "torch":
            assert "weights_only" in kw and getattr(kw["weights_only"], "value", None) is True, \
                f"{source.name}:{call.lineno}: torch.load without weights_only=True"
        if owner == "np":
            assert getattr(kw.get("allow_pickle"), "value", False) is not True, f"{source.name}:{call.lineno}"
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
        module = getattr(node, "module", None) or ""
        assert not {"pickle", "dill", "joblib", "cloudpickle"} & {*names, module.split(".")[0]}, \
            f"{source.name}:{node.lineno} imports a pickle library"


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_a_checkpoint_holding_code_is_refused_not_run(tmp_path):
    """A state.pt crafted to run code when unpickled: resuming refuses it, names the file, and runs nothing."""
    from searchr1_lite.train import TrainConfig, train

    cfg = TrainConfig.load("tiny-cpu", [f"output_dir={tmp_path / 'run'}", "max_steps=2"])
    train(cfg, stop_after=1)
    checkpoint = tmp_path / "run" / "checkpoint-1"
    assert (checkpoint / "adapter" / "adapter_model.safetensors").exists()
    assert not list(checkpoint.rglob("*.bin"))  # adapters are safetensors, never pickles
    marker = tmp_path / "marker.txt"
    (checkpoint / "state.pt").write_bytes(pickle.dumps({"step": _Exploit(marker)}))
    with pytest.raises(ValueError, match=r"checkpoint-1/state.pt: refused"):
        train(cfg, resume=True)
    assert not marker.exists()
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["step"] == 1  # kept


def test_a_folder_or_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    """A corpus or question path that is a folder, or a file saved in another encoding (Latin-1), raised an
    IsADirectoryError traceback or a decode error that named neither the file nor the line."""
    from searchr1_lite.corpus import CorpusError, iter_jsonl

    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"id": "1", "contents": "\\"A\\"\\nok"}\n{"id": "2", "contents": "caf\xe9"}\n')
    with pytest.raises(CorpusError, match=f"^{latin1}:2: not UTF-8 text.*save it as UTF-8"):
        list(iter_jsonl(latin1))
    with pytest.raises(CorpusError, match=f"^{tmp_path}: a folder, not a file"):
        list(iter_jsonl(tmp_path))
    questions = tmp_path / "qa.jsonl"
    questions.write_bytes(b'{"question": "Who?", "golden_answers": ["Jos\xe9"]}\n')
    with pytest.raises(ValueError, match=f"^{questions}:1: not UTF-8 text"):
        read_qa_jsonl(questions)
    with pytest.raises(ValueError, match=f"^{tmp_path}: a folder, not a file"):
        read_qa_jsonl(tmp_path)


def test_a_gold_answer_that_normalises_to_nothing_is_refused(tmp_path):
    """EM compares normalised strings: a gold "a" or "" matched any answer of "." or "the", rewarding it as right."""
    for gold in ("", ".", "the", "A"):
        path = tmp_path / "qa.jsonl"
        path.write_text(json.dumps({"question": "Who?", "golden_answers": ["Ann"]}) + "\n"
                        + json.dumps({"question": "What?", "golden_answers": ["Bob", gold]}) + "\n")
        with pytest.raises(ValueError, match=rf"^{path}:2: golden answer {re.escape(repr(gold))} is empty once "):
            read_qa_jsonl(path)
    path.write_text(json.dumps({"question": "Who?", "golden_answers": ["The Ann", "1"]}) + "\n")
    assert read_qa_jsonl(path)[0].answers == ["The Ann", "1"]


def test_a_parquet_file_is_named_as_one_with_its_conversion(tmp_path):
    """The authors' prepared data is Parquet; read as JSON lines it was "not valid JSON" at line 1, as if damaged."""
    import pandas as pd

    from searchr1_lite.corpus import CorpusError, iter_jsonl

    path = tmp_path / "nq.parquet"
    pd.DataFrame({"question": ["Who?"], "golden_answers": [["Ann"]]}).to_parquet(path)
    with pytest.raises(ValueError, match=rf"^{path}: a Parquet file; .*read_parquet\('{path}'\)\.to_json\("):
        read_qa_jsonl(path)
    with pytest.raises(CorpusError, match=rf"^{path}: a Parquet file"):
        list(iter_jsonl(path))


def test_a_question_path_with_a_tilde_is_a_path(tmp_path, monkeypatch):
    from searchr1_lite.data import load_eval_set, load_questions

    (tmp_path / "qa.jsonl").write_text('{"question": "Who wrote it?", "golden_answers": ["Ann"]}\n')
    monkeypatch.setenv("HOME", str(tmp_path))
    assert [e.answers for e in load_questions("~/qa.jsonl")] == [["Ann"]]
    assert [e.question for e in load_eval_set("~/qa.jsonl")] == ["Who wrote it?"]


def test_a_faiss_file_missing_or_damaged_is_named(tmp_path):
    from searchr1_lite.retrieval import DenseIndex, IndexMismatchError

    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'e5_Flat.index'}: no such faiss index file"):
        DenseIndex.load_faiss(tmp_path / "e5_Flat.index")
    (tmp_path / "cut.index").write_bytes(b"IxFI" + b"\0" * 10)  # a download cut short
    with pytest.raises(IndexMismatchError, match=f"^{tmp_path / 'cut.index'}: not a faiss index faiss can read"):
        DenseIndex.load_faiss(tmp_path / "cut.index")


@pytest.mark.parametrize("text, says", [("[1, 2]", "expected a JSON object of config sections, got a list"),
                                        ('{"optim": ', "not a JSON config")])
def test_a_run_whose_config_json_was_broken_by_hand_is_named(tmp_path, text, says):
    from searchr1_lite.train import load_run_config

    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'config.json'}: {says}"):
        load_run_config(tmp_path)
