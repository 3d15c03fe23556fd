#!/usr/bin/env bash
# The GPU part of the benchmarks in one command, for a machine with an NVIDIA GPU:
#   1. the whole test suite on CuPy arrays (MINIDEEP_DEVICE=gpu), which skips nothing it can run;
#   2. minideep on CuPy against PyTorch CUDA (eager): ops, VGG08/VGG38 steps, and the
#      estimated CIFAR-100 epoch of VGG38 (500 steps of batch 100; the issue's target: < 1 minute).
# Needs `pip install -e ".[gpu]"` (CuPy for CUDA 12) and a CUDA build of torch 2.13.0.
# Extra arguments go to benchmarks/run.py (for example --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import minideep, sys; sys.exit(0 if minideep.gpu_available() else 'gpu_check: CuPy finds no GPU')"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: this torch has no CUDA')"
MINIDEEP_DEVICE=gpu python -m pytest -q tests
python benchmarks/run.py --device gpu "$@"
