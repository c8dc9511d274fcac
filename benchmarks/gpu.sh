#!/usr/bin/env bash
# The GPU benchmark: one prepared run that fits in 8 minutes of one NVIDIA GPU (see benchmarks/gpu.py).
#
#   bash benchmarks/gpu.sh                      # checks nvidia-smi, creates/reuses .venv, 480 s budget
#   bash benchmarks/gpu.sh --budget 300 --json benchmarks/results/gpu.json
#   bash benchmarks/gpu.sh --dry-run            # CPU, tiny sizes: checks the script (the test runs this)
#
# Stages (each skips what would not fit in the time left): Navier-Stokes generator throughput at
# 256^2 (batch 1..256, fp32/fp64) and the extrapolated time of the full fno nu=1e-3 set (1200
# trajectories to T=50 at dt 1e-4); CPU-vs-CUDA identity of a short trajectory; train-step
# throughput and peak memory of every model in fp32 and bf16-mixed; the fidelity benchmark at the
# largest preset that fits. One JSON record (benchmarks/results/gpu.json) and a table on stdout.
#
# Environment: NEURALOPS_PYTHON=/path/to/python uses that interpreter (with PYTHONPATH at this
# checkout); otherwise .venv/bin/python, created first when missing with
# `TORCH_SPEC=torch bash scripts/setup_env.sh` (a CUDA build of torch on a GPU machine).
# The time spent creating the environment counts against the budget (--budget, default 480 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START=$SECONDS
DRY=0
BUDGET=480
ARGS=()
while (($#)); do
    case "$1" in
        --dry-run) DRY=1; ARGS+=("$1") ;;
        --budget) BUDGET="${2:?--budget needs a number of seconds}"; shift ;;
        --budget=*) BUDGET="${1#--budget=}" ;;
        *) ARGS+=("$1") ;;
    esac
    shift
done
if ! [[ "$BUDGET" =~ ^[0-9]+$ ]] || ((BUDGET < 1)); then
    echo "gpu.sh: --budget must be a positive whole number of seconds, got '$BUDGET'" >&2
    exit 2
fi

if ((DRY == 0)); then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "gpu.sh: nvidia-smi not found: this machine has no NVIDIA driver (use --dry-run for the CPU check)" >&2
        exit 1
    fi
    if ! nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader; then
        echo "gpu.sh: nvidia-smi failed: no usable NVIDIA GPU (use --dry-run for the CPU check)" >&2
        exit 1
    fi
fi

if [[ -n "${NEURALOPS_PYTHON:-}" ]]; then
    PY="$NEURALOPS_PYTHON"
else
    if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c "import torch, lightning" >/dev/null 2>&1; then
        echo "gpu.sh: creating the environment (.venv) with TORCH_SPEC=${TORCH_SPEC:-torch}"
        TORCH_SPEC="${TORCH_SPEC:-torch}" bash scripts/setup_env.sh
    fi
    PY=.venv/bin/python
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

LEFT=$((BUDGET - (SECONDS - START)))
if ((LEFT < 30)); then
    echo "gpu.sh: setting up took $((SECONDS - START)) s of the $BUDGET s budget; nothing left to run" >&2
    exit 1
fi
echo "gpu.sh: $("$PY" -c 'import sys, torch; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda {torch.version.cuda}")'), ${LEFT} s left"
exec "$PY" benchmarks/gpu.py --budget "$LEFT" ${ARGS[@]+"${ARGS[@]}"}
