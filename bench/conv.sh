#!/usr/bin/env bash
# The convolution and pooling layers of the MNIST network, ours beside
# PyTorch's, on one thread each, in the same run: forward, and forward plus
# backward, per layer and in total, with the ratio ours / PyTorch (below 1:
# we are faster).
#
#   bench/conv.sh [--repeat N]
#
# Each side times every layer N times (default 30) and keeps its best
# (examples/conv_bench.rs, bench/conv_torch.py). Takes a few seconds.
# Needs python3 with torch; without it, only our numbers are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=30
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift ;;
    *) echo "usage: bench/conv.sh [--repeat N]" >&2; exit 2 ;;
  esac
  shift
done

cargo build --release --example conv_bench >/dev/null 2>&1
ours=$(target/release/examples/conv_bench --repeat "$repeat")
if ! python3 -c "import torch" 2>/dev/null; then
  echo "$ours"
  echo "(no torch: PyTorch's column left out)"
  exit 0
fi
theirs=$(python3 bench/conv_torch.py --repeat "$repeat" --threads 1)
echo "$ours" | grep '^#'
echo "$theirs" | grep '^#'
python3 - "$ours" "$theirs" <<'PY'
import sys

def rows(text):
    return {line.split()[0]: [float(v) for v in line.split()[1:3]]
            for line in text.splitlines() if line and not line.startswith("#")}

ours, theirs = rows(sys.argv[1]), rows(sys.argv[2])
print(f"{'layer':<7}{'forward ms (cps / torch = ratio)':>36}{'forward+backward ms (cps / torch = ratio)':>46}")
for name in ours:
    cells = []
    for i in range(2):
        a, b = ours[name][i], theirs[name][i]
        cells.append(f"{a:8.3f} / {b:8.3f} = {a / b:5.2f}")
    print(f"{name:<7}{cells[0]:>36}{cells[1]:>46}")
PY
