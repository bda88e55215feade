#!/usr/bin/env bash
# The character-level RNN and LSTM of Lantern's evaluation, ours
# (examples/char_rnn) beside PyTorch's (../shared/baselines/char_rnn_torch.py),
# one thread each, on the same data with the same settings (the first 1,135
# bytes of Tiny Shakespeare, hidden 50, windows of 20, min-char-rnn's
# Adagrad), the two alternating, both cells: training iterations per second
# of each round and the ratio ours / PyTorch's (above 1: we are faster).
#
#   bench/char_rnn.sh [--iters N] [--torch-iters N] [--rounds N]
#
# --iters (ours, default 5000) and --torch-iters (PyTorch's, default 1000:
# a rate needs no more, and 5000 take it about 25 s per round) set the run
# lengths, --rounds (runs of each side per cell, alternating) defaults to 3.
# The text is ../shared/data/tinyshakespeare/input.txt, or the example's
# bundled excerpt when that is absent (their first 1,135 bytes are the same).
# Takes about half a minute. Needs python3 with torch for PyTorch's column;
# without it, only our numbers are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
iters=5000
torch_iters=1000
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --iters) iters=$2; shift ;;
    --torch-iters) torch_iters=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    *) echo "usage: bench/char_rnn.sh [--iters N] [--torch-iters N] [--rounds N]" >&2; exit 2 ;;
  esac
  shift
done
data=../shared/data/tinyshakespeare/input.txt
[ -f "$data" ] || data=examples/char_rnn/data/tinyshakespeare-1200-lines.txt
reference=../shared/baselines/char_rnn_torch.py
have_torch=0
[ -f "$reference" ] && python3 -c "import torch, numpy" 2>/dev/null && have_torch=1

cargo build --release --example char_rnn >/dev/null 2>&1

# The rate from a run's last line, "N iterations in S s, R iterations/s".
rate() { sed -n 's/^[0-9]* iterations in [0-9.]* s, \([0-9]*\) iterations\/s$/\1/p' | tail -n 1; }

echo "character models, the first 1135 bytes of $data, hidden 50, seq 20, one thread each"
echo "(cps $iters iterations per run, torch $torch_iters)"
for cell in rnn lstm; do
  ours_all="" theirs_all=""
  for round in $(seq "$rounds"); do
    ours=$(target/release/examples/char_rnn --cell "$cell" --data "$data" --iters "$iters" --checkpoint none --plot none | rate)
    ours_all="$ours_all $ours"
    line="$cell round $round: cps $ours iterations/s"
    if [ $have_torch = 1 ]; then
      theirs=$(python3 "$reference" --cell "$cell" --data "$data" --iters "$torch_iters" --threads 1 | rate)
      theirs_all="$theirs_all $theirs"
      line="$line, torch $theirs iterations/s, ratio $(python3 -c "print(f'{$ours / $theirs:.1f}')")"
    fi
    echo "$line"
  done
  if [ $have_torch = 1 ]; then
    python3 - "$cell" "$ours_all" "$theirs_all" <<'PY'
import statistics, sys
cell = sys.argv[1]
ours = [float(v) for v in sys.argv[2].split()]
theirs = [float(v) for v in sys.argv[3].split()]
ratios = [o / t for o, t in zip(ours, theirs)]
print(f"{cell} median: cps {statistics.median(ours):.0f} iterations/s, torch {statistics.median(theirs):.0f} "
      f"iterations/s, ratio {statistics.median(ours) / statistics.median(theirs):.1f} "
      f"(rounds {min(ratios):.1f} to {max(ratios):.1f})")
PY
  fi
done
[ $have_torch = 1 ] || echo "(no torch or no $reference: PyTorch's column left out)"
