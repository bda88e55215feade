#!/usr/bin/env bash
# The MNIST CNN of Lantern's evaluation, ours (examples/cnn_mnist) beside
# PyTorch's (../shared/baselines/cnn_mnist_torch.py), one thread each, on the
# same data with the same settings (batch 100, SGD at 0.05, dropout), in the
# same run, the two alternating: training images per second of each round and
# the ratio ours / PyTorch's (above 1: we are faster).
#
#   bench/cnn_mnist.sh [--data DIR] [--epochs N] [--limit N] [--rounds N]
#
# DIR defaults to ../shared/data/mnist (the four IDX .gz files); --epochs
# defaults to 1, --rounds (runs of each side, alternating) to 3. Each round
# prints both speeds and their ratio; the summary gives each side's best
# round (the least disturbed by whatever else the machine runs) and the
# spread of the rounds' ratios. One round of one epoch of the full training
# set takes about fifteen seconds. Needs python3 with torch for PyTorch's
# column; without it, only our numbers are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data/mnist
epochs=1
rounds=3
limit=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --limit) limit=(--limit "$2"); shift ;;
    --rounds) rounds=$2; shift ;;
    *) echo "usage: bench/cnn_mnist.sh [--data DIR] [--epochs N] [--limit N] [--rounds N]" >&2; exit 2 ;;
  esac
  shift
done
reference="$(dirname "$data")/../baselines/cnn_mnist_torch.py"
[ -f "$reference" ] || reference=../shared/baselines/cnn_mnist_torch.py
have_torch=0
[ -f "$reference" ] && python3 -c "import torch" 2>/dev/null && have_torch=1

cargo build --release --example cnn_mnist >/dev/null 2>&1
settings=(--data "$data" --epochs "$epochs" "${limit[@]}" --no-test)

# Training images per second over all epochs of one run's report: the
# images (from the first line) times the epochs, over the epochs' seconds.
speed() {
  python3 -c '
import re, sys
text = sys.stdin.read()
images = int(re.search(r"(\d+) training images", text).group(1))
seconds = [float(s) for s in re.findall(r"^epoch \d+: mean loss [\d.naninf]+, ([\d.]+) s,", text, re.M)]
print(f"{images * len(seconds) / sum(seconds):.0f}")
'
}

echo "MNIST CNN, batch 100, $epochs epoch(s) of $data${limit[*]:+ (${limit[*]})}, one thread each"
ours_all="" theirs_all=""
for round in $(seq "$rounds"); do
  ours=$(target/release/examples/cnn_mnist "${settings[@]}" --checkpoint none --plot none | speed)
  ours_all="$ours_all $ours"
  line="round $round: cps $ours images/s"
  if [ $have_torch = 1 ]; then
    theirs=$(python3 "$reference" "${settings[@]}" --threads 1 | speed)
    theirs_all="$theirs_all $theirs"
    line="$line, torch $theirs images/s, ratio $(python3 -c "print(f'{$ours / $theirs:.2f}')")"
  fi
  echo "$line"
done
if [ $have_torch = 1 ]; then
  python3 - "$ours_all" "$theirs_all" <<'PY'
import statistics, sys
ours = [float(v) for v in sys.argv[1].split()]
theirs = [float(v) for v in sys.argv[2].split()]
ratios = [o / t for o, t in zip(ours, theirs)]
print(f"best of {len(ours)}: cps {max(ours):.0f} images/s, torch {max(theirs):.0f} images/s, "
      f"ratio {max(ours) / max(theirs):.2f}; ratio of each round: median {statistics.median(ratios):.2f}, "
      f"{min(ratios):.2f} to {max(ratios):.2f}")
PY
else
  echo "(no torch or no $reference: PyTorch's column left out)"
fi
