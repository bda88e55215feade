#!/usr/bin/env bash
# A GRU run forward only over 1,000, 10,000 and 100,000 tokens: ours
# (examples/gru_forward.rs, `eval()`, with the peak resident memory of each
# length) and PyTorch's under no_grad (bench/gru_forward_torch.py), one
# thread each, time per step. Both should stay flat with the length.
#
#   bench/gru_forward.sh [--steps N,N,...]
#
# Takes about ten seconds. Needs python3 with torch for PyTorch's lines.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=1000,10000,100000
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift ;;
    *) echo "usage: bench/gru_forward.sh [--steps N,N,...]" >&2; exit 2 ;;
  esac
  shift
done

cargo build --release --example gru_forward >/dev/null 2>&1
target/release/examples/gru_forward --steps "$steps"
if python3 -c "import torch" 2>/dev/null; then
  python3 bench/gru_forward_torch.py --steps "$steps"
else
  echo "(no torch: PyTorch's lines left out)"
fi
