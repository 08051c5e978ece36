#!/usr/bin/env bash
# Every speed benchmark, one after another, as JSON lines in one file: the one script to
# run on a lent GPU (or on a quiet CPU). Each benchmark measures its own yardstick.
# Usage: bash bench/all.sh [OUT.jsonl]   (default: bench-results.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-results.jsonl}"
: > "$out"
for bench in training sampler rescore compile; do
  echo "bench/$bench.py" >&2
  python "bench/$bench.py" --json | tee -a "$out"
done
python bench/latency.py --json --ratings 40 | tail -1 | tee -a "$out"
python bench/latency.py --json --ratings 40 --pretrained none | tail -1 | tee -a "$out"
echo "wrote $out" >&2
