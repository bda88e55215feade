#!/usr/bin/env bash
# Runs the project's benchmarks beside the PyTorch reference, on the same
# machine, data and thread count, in one run, and prints the ratios.
#
#   bench/compare.sh [SST_DIR] [--quick] [--best-of N]
#
# Sections: the per-operation overhead (scalar chain), the MNIST network's
# convolution and pooling layers (bench/conv.sh), Hessian-vector products
# beside one gradient (bench/hvp.sh), a GRU forward only over long
# sequences (bench/gru_forward.sh), Lantern's MNIST CNN
# (bench/cnn_mnist.sh) and character RNN and LSTM (bench/char_rnn.sh),
# the Tree-LSTM.
# SST_DIR defaults to ../shared/data/sst (next to the project). --quick
# trains on the first 1000 trees instead of the full training set.
# --best-of N runs every Tree-LSTM configuration, ours and PyTorch's,
# N times, in turn, and keeps the fastest (for a machine shared with
# others, whose speed drifts); it also lists each round's ratio to that
# round's PyTorch node-mode run, so that the spread shows how far the
# best-of ratio holds.
# Needs python3 with torch (`pip install torch safetensors`) for the
# reference columns; without it, only our numbers are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
sst=../shared/data/sst
quick=""
best_of=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=--quick ;;
    --best-of) best_of=$2; shift ;;
    *) sst=$1 ;;
  esac
  shift
done
baselines="$(dirname "$sst")/../baselines"
[ -d "$baselines" ] || baselines="../shared/baselines"
limit=()
[ "$quick" = "--quick" ] && limit=(--limit 1000)

cargo build --release --example treelstm --example scalar_chain --example gemm_peak --example conv_bench >/dev/null 2>&1
have_torch=0
python3 -c "import torch" 2>/dev/null && have_torch=1

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
# The smaller of two numbers.
smaller() { awk -v a="$1" -v b="$2" 'BEGIN { print (b < a) ? b : a }'; }

echo "== machine"
grep -m1 "model name" /proc/cpuinfo || true
nproc
peak_lines=$(target/release/examples/gemm_peak)
echo "$peak_lines"
peak=$(echo "$peak_lines" | sed -n 's/^sgemm.*: \([0-9.]*\) GFLOP\/s.*/\1/p')
# The core's multiply-add peak at its widest vectors (empty without AVX2).
fma_peak=$(echo "$peak_lines" | sed -n 's/^fma peak.*: \([0-9.]*\) GFLOP\/s.*/\1/p')

echo
echo "== per-operation overhead (scalar chain, forward+backward)"
# Two chain lengths: 30,000 operations keep our working set (stack frames
# and results, ~500 bytes per operation) in the L3 cache; 300,000 do not.
# PyTorch runs the same chain lengths.
# With --best-of N, each side runs N times, in turn, and its fastest run
# counts; every run is listed, since this machine's speed drifts.
for ops in 30000 300000; do
  ours="" theirs="" ours_runs="" theirs_runs=""
  for _ in $(seq "$best_of"); do
    run=$(target/release/examples/scalar_chain --ops $ops --repeat 20 | sed -n 's/.* \([0-9]*\) ns\/op.*/\1/p')
    ours_runs="$ours_runs $run"
    ours=$(smaller "${ours:-$run}" "$run")
    if [ $have_torch = 1 ]; then
      run=$(python3 "$baselines/scalar_chain_torch.py" --ops $ops --repeat 3 | sed -n 's/.* \([0-9]*\) ns\/op.*/\1/p')
      theirs_runs="$theirs_runs $run"
      theirs=$(smaller "${theirs:-$run}" "$run")
    fi
  done
  line="$ops ops: cps $ours ns/op"
  if [ $have_torch = 1 ]; then
    line="$line, torch $theirs ns/op  ->  cps is $(ratio "$theirs" "$ours")x faster"
  fi
  echo "$line"
  if [ "$best_of" -gt 1 ]; then
    echo "    runs: cps$ours_runs; torch${theirs_runs:- -}"
  fi
done

# One epoch of our example with the given extra options; prints trees/s.
cps_epoch() { # data dir, options...
  local dir=$1
  shift
  local out
  out=$(target/release/examples/treelstm --data "$dir" --epochs 1 "${limit[@]}" --no-eval --plot none --checkpoint none "$@")
  echo "$out" | grep -E "^epoch|^peak" | sed 's/^/    /' >&2
  echo "$out" | sed -n 's/.* \([0-9]*\) trees\/s, .* \([0-9.]*\) GFLOP\/s.*/\1 \2/p'
}

# One epoch of the PyTorch reference on one thread; prints trees/s.
torch_epoch() { # data dir, mode
  python3 "$baselines/treelstm_torch.py" --data "$1" --epochs 1 "${limit[@]}" --no-dev --threads 1 --mode "$2" \
    | sed -n 's/.* \([0-9.]*\) trees\/s.*/\1/p'
}

# The larger of two numbers.
larger() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a) ? b : a }'; }

run_treelstm() { # name, data dir
  local name=$1 dir=$2
  echo
  echo "== Tree-LSTM, $name, one epoch (best of $best_of)"
  # Our configurations: one thread node by node, with its subtrees joined
  # (batched by the runtime) and level by level (the targets' setting),
  # then the opt-in uses of the second core, and two data-parallel
  # workers (on batches of trees: steps of their own, trees/s compared).
  local configs=("one thread, node by node|--mode node"
                 "one thread, node by node with subtrees joined|--mode joined"
                 "one thread, level by level|--mode level"
                 "second core, node by node|--mode node --second-core"
                 "second core, level by level|--mode level --second-core"
                 "two workers on batches of 32 trees (other steps), node by node|--workers 2 --batch 32")
  # Every configuration, PyTorch's and ours, runs once per round, and
  # each keeps its best round: the machine's speed drifts over minutes,
  # and taking the configurations in turn spreads a slow spell over all
  # of them rather than over one configuration's consecutive runs.
  local node=0 level=0 round i t tps gflops round_node
  local -a best_tps best_gflops round_ratios
  for round in $(seq "$best_of"); do
    if [ $have_torch = 1 ]; then
      round_node=$(torch_epoch "$dir" node)
      node=$(larger "$node" "$round_node")
      level=$(larger "$level" "$(torch_epoch "$dir" level)")
    fi
    for i in "${!configs[@]}"; do
      read -r tps gflops < <(cps_epoch "$dir" ${configs[$i]#*|})
      if [ "$(larger "${best_tps[$i]:-0}" "$tps")" != "${best_tps[$i]:-0}" ]; then
        best_tps[$i]=$tps
        best_gflops[$i]=$gflops
      fi
      # Each round's own ratio to PyTorch's node mode of that round: how
      # far the best-of ratio can be relied on while the machine drifts.
      if [ $have_torch = 1 ]; then
        round_ratios[$i]="${round_ratios[$i]:-} $(ratio "$tps" "$round_node")"
      fi
    done
  done
  if [ $have_torch = 1 ]; then
    echo "torch --mode node (one thread): $node trees/s"
    echo "torch --mode level (one thread): $level trees/s"
  fi
  for i in "${!configs[@]}"; do
    tps=${best_tps[$i]}
    gflops=${best_gflops[$i]}
    local line="cps ${configs[$i]%%|*}: $tps trees/s, $gflops GFLOP/s = $(python3 -c "print('%.1f%%' % (100 * $gflops / $peak))") of the sgemm peak"
    if [ -n "$fma_peak" ]; then
      line="$line, $(python3 -c "print('%.1f%%' % (100 * $gflops / $fma_peak))") of the FMA peak"
    fi
    if [ $have_torch = 1 ]; then
      line="$line  ->  $(ratio "$tps" "$node")x torch node, $(ratio "$tps" "$level")x torch level"
    fi
    echo "$line"
    if [ $have_torch = 1 ] && [ "$best_of" -gt 1 ]; then
      echo "    each round against that round's torch node:${round_ratios[$i]}"
    fi
  done
}

echo
echo "== convolution and pooling (the MNIST network's layers, batch 100, best of $((30 * best_of)))"
bench/conv.sh --repeat $((30 * best_of))

echo
echo "== Hessian-vector products beside one gradient (best of $((40 * best_of)))"
bench/hvp.sh --repeat $((40 * best_of))

echo
echo "== a GRU forward only (eval) over long sequences"
bench/gru_forward.sh

echo
echo "== Lantern's MNIST CNN, one thread, one epoch of MNIST"
bench/cnn_mnist.sh --rounds $((2 + best_of))

echo
echo "== Lantern's character RNN and LSTM (min-char-rnn), one thread"
bench/char_rnn.sh --rounds $((2 + best_of))

run_treelstm "SST training set" "$sst"
lantern=$(mktemp -d)
cp "$sst/dev.txt" "$lantern/train.txt"
cp "$sst/dev.txt" "$lantern/dev.txt"
cp "$sst/test.txt" "$lantern/test.txt"
limit=()
run_treelstm "Lantern's setting (the 1101 dev.txt trees)" "$lantern"
rm -rf "$lantern"
