#!/usr/bin/env bash
# Installs what the `mpi` feature needs on a Debian or Ubuntu machine: a
# system MPI (Open MPI, its `mpicc` and `mpirun`) and libclang, which the
# `mpi` crate's build uses to generate its bindings. Run as root, or with
# sudo available. Does nothing when both are present already.
set -euo pipefail
if command -v mpicc >/dev/null && command -v mpirun >/dev/null \
    && ldconfig -p | grep -q 'libclang[-.0-9]*\.so'; then
    exit 0
fi
run_as_root=()
if [ "$(id -u)" -ne 0 ]; then
    run_as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${run_as_root[@]}" apt-get update -qq
"${run_as_root[@]}" apt-get install -y -qq --no-install-recommends \
    openmpi-bin libopenmpi-dev libclang-dev >/dev/null
