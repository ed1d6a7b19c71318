"""Inputs from users: bad files get an error naming the file, line or key and the fix; loading never unpickles."""

import ast
import json
import pickle
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
    ('["a", "list"]', ":2:"),
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
