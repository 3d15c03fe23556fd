#!/usr/bin/env bash
# The GPU check, runnable as it is on a machine with an NVIDIA GPU and no network:
#
#   bash benchmarks/gpu_check.sh OUTDIR                 # every step, in order
#   bash benchmarks/gpu_check.sh OUTDIR 00 05 04        # only these steps (by number)
#   bash benchmarks/gpu_check.sh --dry-run OUTDIR [..]  # on any machine, under the CPU stand-in for CuPy
#
# It uses the python3 and the CuPy / PyTorch already installed there and installs nothing;
# minideep is imported from this checkout (PYTHONPATH), not from an installed copy. Each step
# runs under its own timeout (all under 10 minutes), a failing step does not stop the others,
# and every result goes to OUTDIR: one log per step, JUnit XML for the test steps, JSON for
# the measurements, and summary.txt (step, exit status, seconds). The benchmarks page takes
# its GPU section from these files and from nothing else.
#
# Steps (a limited device budget: run 00 08 05 04 first, then 01 02 06):
#   00 environment     GPU, driver, Python, CuPy, PyTorch and the test tools present  (1 min)
#   01 tests-ops       the GPU variants of the op and error tests (MINIDEEP_DEVICE=gpu) (9 min)
#   02 tests-engine    the GPU variants of the engine, layer, block, optimizer tests   (9 min)
#   03 tests-rest      data, training, models, diagnostics tests with a GPU present    (9 min)
#   04 chapters        every chapter's smoke preset with --device gpu                  (9 min)
#   05 step-time       minideep's VGG08/VGG38 training steps timed on the GPU          (5 min)
#   06 bench-torch     benchmarks/run.py --device gpu --quick (needs PyTorch with CUDA) (9 min)
#   07 counts          kernel launches and read-backs of a VGG38 step, counted on the CPU (3 min)
#   08 standin-names   every name of the CPU stand-in for CuPy exists in this CuPy      (1 min)
# Exit status: 0 when every step that ran passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
if [ $# -lt 1 ]; then
  echo "usage: bash benchmarks/gpu_check.sh [--dry-run] OUTDIR [STEP ...]" >&2
  exit 2
fi
OUT=$1; shift
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WANTED=" $* "

PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
export PYTHONUNBUFFERED=1
if [ "$DRY" = 1 ]; then
  # The stand-in (tests/fake_cupy) is "cupy" for every process; the tests' default device is it.
  export PYTHONPATH="$ROOT/tests/fake_cupy:$PYTHONPATH"
  unset MINIDEEP_DEVICE
  GPU_TESTS=()
else
  GPU_TESTS=(env MINIDEEP_DEVICE=gpu)
fi
PYTEST=("$PY" -m pytest -q -p no:cacheprovider)

SUMMARY="$OUT/summary.txt"
echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$([ "$DRY" = 1 ] && echo ' DRY RUN under the CuPy stand-in: no GPU')" > "$SUMMARY"
FAILED=0

# step NUMBER NAME TIMEOUT_S COMMAND...: run it if wanted, log to OUTDIR/NUMBER-NAME.log, record status and time.
step() {
  local number=$1 name=$2 limit=$3
  shift 3
  if [ "$WANTED" != "  " ] && [[ "$WANTED" != *" $number "* ]]; then return 0; fi
  local log="$OUT/$number-$name.log" started rc
  started=$(date +%s)
  echo "== $number $name (timeout ${limit}s) -> $log"
  timeout --kill-after=15 "$limit" "$@" > "$log" 2>&1
  rc=$?
  local took=$(( $(date +%s) - started ))
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "(timed out after ${limit}s)" >> "$log"
  [ $rc -ne 0 ] && FAILED=1
  printf '%s %-14s rc=%-4s %5ss\n' "$number" "$name" "$rc" "$took" | tee -a "$SUMMARY"
  tail -n 3 "$log"
}

ENV_PY='
import importlib, platform, sys
print("python", platform.python_version(), sys.executable)
for name in ("numpy", "cupy", "torch", "pytest", "hypothesis", "matplotlib", "tqdm"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as e:
        print(name, "MISSING", type(e).__name__, e)
try:
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
    print("cupy devices", n, "runtime", cupy.cuda.runtime.runtimeGetVersion())
    if hasattr(cupy.cuda.runtime, "getDeviceProperties"):
        print("gpu 0", cupy.cuda.runtime.getDeviceProperties(0)["name"])
except Exception as e:
    print("cupy device query failed:", type(e).__name__, e)
try:
    import torch
    print("torch cuda", torch.cuda.is_available(), torch.version.cuda)
except Exception as e:
    print("torch cuda query failed:", e)
import minideep
print("minideep", minideep.__file__, "gpu_available", minideep.gpu_available())
'
environment() {
  command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi: not found"
  "$PY" -c "$ENV_PY"
}

export -f environment
export ENV_PY PY

torch_has_cuda() { "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; }

# Only the device variants on the GPU: the CPU variants are what CI runs.
OPS_TESTS=(tests/test_ops_*.py tests/test_errors.py tests/test_gradcheck.py)
ENGINE_TESTS=(tests/test_autograd.py tests/test_nn_layers.py tests/test_nn_module.py tests/test_blocks.py
              tests/test_fast_ops.py tests/test_optim.py tests/test_init.py tests/test_gpu_standin.py)
REST_TESTS=(tests/test_data_loader.py tests/test_data_transforms.py tests/test_train.py tests/test_callbacks.py
            tests/test_vgg.py tests/test_models_06.py tests/test_diagnostics_chain_rule.py
            tests/test_diagnostics_gradient_flow.py tests/test_diagnostics_highway.py)

step 00 environment 60 bash -c environment
step 01 tests-ops 540 ${GPU_TESTS[@]+"${GPU_TESTS[@]}"} "${PYTEST[@]}" -k gpu --junitxml="$OUT/01-tests-ops.xml" "${OPS_TESTS[@]}"
step 02 tests-engine 540 ${GPU_TESTS[@]+"${GPU_TESTS[@]}"} "${PYTEST[@]}" -k "gpu and not every_chapter" --junitxml="$OUT/02-tests-engine.xml" "${ENGINE_TESTS[@]}"
step 03 tests-rest 540 ${GPU_TESTS[@]+"${GPU_TESTS[@]}"} "${PYTEST[@]}" --junitxml="$OUT/03-tests-rest.xml" "${REST_TESTS[@]}"
step 04 chapters 540 ${GPU_TESTS[@]+"${GPU_TESTS[@]}"} "${PYTEST[@]}" -k every_chapter --junitxml="$OUT/04-chapters.xml" tests/test_gpu_standin.py
step 05 step-time 300 "$PY" benchmarks/gpu_step_time.py --rounds "$([ "$DRY" = 1 ] && echo 1 || echo 20)" --json "$OUT/05-step-time.json"
if [ "$DRY" = 1 ]; then
  step 06 bench-torch 10 echo "dry run: skipped (needs PyTorch with CUDA and a GPU)"
elif torch_has_cuda; then
  step 06 bench-torch 540 "$PY" benchmarks/run.py --device gpu --quick --out "$OUT/06-bench-torch"
else
  step 06 bench-torch 10 echo "skipped: this PyTorch has no CUDA (05 step-time has minideep's GPU times)"
fi
step 07 counts 180 "$PY" benchmarks/gpu_counts.py --json "$OUT/07-counts.json"
if [ "$DRY" = 1 ]; then
  step 08 standin-names 10 echo "dry run: skipped (compares the stand-in with a real CuPy)"
else
  step 08 standin-names 120 "$PY" tests/fake_cupy/compare_names.py
fi

echo "summary: $SUMMARY"
exit $FAILED
