#!/usr/bin/env bash
# What a Hessian-vector product costs beside one gradient, ours
# (examples/hvp_cost.rs: an MLP, a Tree-LSTM-like recursion, a chain of
# small operations, in f64 and f32) and PyTorch's double backward on the
# same MLP (bench/hvp_torch.py), one thread each. Each line gives the best
# time of the gradient and of the product, and their ratio.
#
#   bench/hvp.sh [--repeat N]
#
# Takes a few seconds. Needs python3 with torch for PyTorch's lines.
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=40
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift ;;
    *) echo "usage: bench/hvp.sh [--repeat N]" >&2; exit 2 ;;
  esac
  shift
done

cargo build --release --example hvp_cost >/dev/null 2>&1
echo "# cps"
target/release/examples/hvp_cost --repeat "$repeat"
if python3 -c "import torch" 2>/dev/null; then
  echo "# torch (double backward)"
  python3 bench/hvp_torch.py --repeat "$repeat" --threads 1
else
  echo "(no torch: PyTorch's lines left out)"
fi
