#!/usr/bin/env bash
# Data-parallel training on this machine: first its own ceiling (one copy of
# the GEMM peak benchmark against two at once: the cores may share what one
# copy uses), then one worker against two on the same global batches, in
# the same run, alternating: the MNIST CNN (images/s) and the Tree-LSTM
# with batches of trees (trees/s). Each model's loss logs of the last round
# are drawn side by side (--figures DIR: workers-cnn.svg,
# workers-treelstm.svg). With mpirun on the path (scripts/install-mpi.sh),
# the two workers also run as two MPI processes.
#
#   bench/workers.sh [--rounds N] [--mnist DIR] [--sst DIR] [--batch-cnn N]
#                    [--batch-trees N] [--figures DIR]
#
# Defaults: 3 rounds, ../shared/data/mnist and ../shared/data/sst, batches of
# 100 images and 32 trees, one epoch each, figures not drawn. A round takes
# about a minute. The summary gives each configuration's mean over rounds,
# two workers' speed-up and its fraction of the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 mnist=../shared/data/mnist sst=../shared/data/sst
batch_cnn=100 batch_trees=32 figures=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --mnist) mnist=$2; shift ;;
    --sst) sst=$2; shift ;;
    --batch-cnn) batch_cnn=$2; shift ;;
    --batch-trees) batch_trees=$2; shift ;;
    --figures) figures=$2; shift ;;
    *) echo "usage: bench/workers.sh [--rounds N] [--mnist DIR] [--sst DIR] [--batch-cnn N] [--batch-trees N] [--figures DIR]" >&2; exit 2 ;;
  esac
  shift
done
features=()
mpi=0
if command -v mpirun >/dev/null; then
  features=(--features mpi)
  mpi=1
fi
cargo build --release "${features[@]}" --example gemm_peak --example cnn_mnist \
  --example treelstm --example loss_curves >/dev/null 2>&1
bin=target/release/examples
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mpirun_two=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2)

# The sgemm rate a report of gemm_peak gives.
sgemm() { grep -o 'best of [0-9]*: [0-9.]* GFLOP/s' | head -1 | awk '{print $4}'; }
# Items per second of one run: items per epoch over the epoch's seconds.
per_second() { grep -o "[0-9]* $1/s" | head -1 | awk '{print $1}'; }

echo "ceiling: gemm_peak alone, then two copies at once ($rounds rounds)"
alone="" pair=""
for round in $(seq "$rounds"); do
  one=$($bin/gemm_peak | sgemm)
  $bin/gemm_peak > "$scratch/a" & $bin/gemm_peak > "$scratch/b"; wait
  two="$(sgemm < "$scratch/a") $(sgemm < "$scratch/b")"
  alone="$alone $one" pair="$pair $two"
  echo "round $round: alone $one GFLOP/s; two at once $two GFLOP/s"
done

cnn=(--data "$mnist" --epochs 1 --batch "$batch_cnn" --no-test --checkpoint none --plot none)
trees=(--data "$sst" --epochs 1 --batch "$batch_trees" --no-eval --checkpoint none --plot none)
declare -A speed
record() { speed[$1]="${speed[$1]:-} $2"; echo "  $1: $2 $3/s"; }
for round in $(seq "$rounds"); do
  echo "round $round"
  for workers in 1 2; do
    record "cnn-$workers" "$($bin/cnn_mnist "${cnn[@]}" --workers $workers --loss-log "$scratch/cnn-$workers.log" | per_second images)" images
    record "treelstm-$workers" "$($bin/treelstm "${trees[@]}" --workers $workers --loss-log "$scratch/treelstm-$workers.log" | per_second trees)" trees
  done
  if [ $mpi = 1 ]; then
    record cnn-mpi "$("${mpirun_two[@]}" $bin/cnn_mnist "${cnn[@]}" | per_second images)" images
    record treelstm-mpi "$("${mpirun_two[@]}" $bin/treelstm "${trees[@]}" | per_second trees)" trees
  fi
done

python3 - "$alone" "$pair" "${speed[cnn-1]}" "${speed[cnn-2]}" "${speed[treelstm-1]}" \
  "${speed[treelstm-2]}" "${speed[cnn-mpi]:-}" "${speed[treelstm-mpi]:-}" <<'PY'
import statistics, sys
values = [[float(v) for v in a.split()] for a in sys.argv[1:]]
alone, pair, cnn1, cnn2, tree1, tree2, cnn_mpi, tree_mpi = values
mean = statistics.mean
ceiling = sum(pair) / len(pair) * 2 / mean(alone)
print(f"ceiling: two copies reach {ceiling:.2f}x one (sgemm, mean of {len(alone)} rounds)")
for name, one, two, mpi in [("MNIST CNN", cnn1, cnn2, cnn_mpi), ("Tree-LSTM", tree1, tree2, tree_mpi)]:
    speedup = mean(two) / mean(one)
    ratios = [t / o for o, t in zip(one, two)]
    line = (f"{name}: 1 worker {mean(one):.0f}/s, 2 threads {mean(two):.0f}/s: {speedup:.2f}x "
            f"({speedup / ceiling:.2f} of the ceiling; rounds {min(ratios):.2f} to {max(ratios):.2f})")
    if mpi:
        line += f"; 2 MPI processes {mean(mpi):.0f}/s: {mean(mpi) / mean(one):.2f}x"
    print(line)
PY
if [ -n "$figures" ]; then
  mkdir -p "$figures"
  $bin/loss_curves --out "$figures/workers-cnn.svg" --title "MNIST CNN, batch $batch_cnn" \
    --unit batches "1 worker=$scratch/cnn-1.log" "2 workers=$scratch/cnn-2.log"
  $bin/loss_curves --out "$figures/workers-treelstm.svg" --title "Tree-LSTM on SST, batch $batch_trees" \
    --unit batches "1 worker=$scratch/treelstm-1.log" "2 workers=$scratch/treelstm-2.log"
fi
