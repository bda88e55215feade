#!/usr/bin/env bash
# Runs the project's benchmarks beside the PyTorch reference, on the same
# machine, data and thread count, in one run, and prints the ratios.
#
#   bench/compare.sh [SST_DIR] [--quick]
#
# SST_DIR defaults to ../shared/data/sst (next to the project). --quick
# trains on the first 1000 trees instead of the full training set.
# Needs python3 with torch (`pip install torch safetensors`) for the
# reference columns; without it, only our numbers are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
sst="${1:-../shared/data/sst}"
quick="${2:-}"
baselines="$(dirname "$sst")/../baselines"
[ -d "$baselines" ] || baselines="../shared/baselines"
limit=()
[ "$quick" = "--quick" ] && limit=(--limit 1000)

cargo build --release --example treelstm --example scalar_chain --example gemm_peak >/dev/null 2>&1
have_torch=0
python3 -c "import torch" 2>/dev/null && have_torch=1

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

echo "== machine"
grep -m1 "model name" /proc/cpuinfo || true
nproc
target/release/examples/gemm_peak | tee /tmp/cps-peak.txt
peak=$(sed -n 's/.*: \([0-9.]*\) GFLOP\/s.*/\1/p' /tmp/cps-peak.txt)

echo
echo "== per-operation overhead (scalar chain, forward+backward)"
ours=$(target/release/examples/scalar_chain --ops 300000 | sed -n 's/.* \([0-9]*\) ns\/op.*/\1/p')
echo "cps: $ours ns/op"
if [ $have_torch = 1 ]; then
  theirs=$(python3 "$baselines/scalar_chain_torch.py" --ops 30000 --repeat 3 | sed -n 's/.* \([0-9]*\) ns\/op.*/\1/p')
  echo "torch: $theirs ns/op   ->  cps is $(ratio "$theirs" "$ours")x faster"
fi

run_treelstm() { # name, data dir
  local name=$1 dir=$2
  echo
  echo "== Tree-LSTM, $name, one epoch, one thread"
  local out
  out=$(target/release/examples/treelstm --data "$dir" --epochs 1 "${limit[@]}" --no-eval --plot none)
  echo "$out" | grep -E "epoch|peak"
  local ours_tps gflops
  ours_tps=$(echo "$out" | sed -n 's/.* \([0-9]*\) trees\/s.*/\1/p')
  gflops=$(echo "$out" | sed -n 's/.* \([0-9.]*\) GFLOP\/s.*/\1/p')
  echo "cps: $ours_tps trees/s, $gflops GFLOP/s = $(python3 -c "print('%.1f%%' % (100 * $gflops / $peak))") of the measured sgemm peak"
  if [ $have_torch = 1 ]; then
    for mode in node level; do
      local t
      t=$(python3 "$baselines/treelstm_torch.py" --data "$dir" --epochs 1 "${limit[@]}" --no-dev --threads 1 --mode $mode \
          | sed -n 's/.* \([0-9.]*\) trees\/s.*/\1/p')
      echo "torch --mode $mode: $t trees/s   ->  cps is $(ratio "$ours_tps" "$t")x"
    done
  fi
}

run_treelstm "SST training set" "$sst"
lantern=$(mktemp -d)
cp "$sst/dev.txt" "$lantern/train.txt"
cp "$sst/dev.txt" "$lantern/dev.txt"
cp "$sst/test.txt" "$lantern/test.txt"
limit=()
run_treelstm "Lantern's setting (the 1101 dev.txt trees)" "$lantern"
rm -rf "$lantern"
