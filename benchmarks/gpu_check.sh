#!/usr/bin/env bash
# Every GPU check in one run, for a machine with a CUDA GPU (made for an H200; <= 8 minutes).
#
#   benchmarks/gpu_check.sh OUT_DIR
#
# Writes to OUT_DIR:
#   env.txt                       GPU, driver, torch/cupy versions, free memory
#   pytest_gpu.txt                `pytest -m gpu` (every @pytest.mark.gpu test: kernels, strategies, runs)
#   bench_1e6.{json,md}           every kernel at N ~ 1e6, torch against fused CuPy, with the HBM floor
#   bench_1e7.{json,md}           the same at N ~ 1e7 (scale 10)
#   demo_cuda.txt                 the demo preset with device=cuda (tracking off), wall time and per-run times
#   summary.txt                   the pass/fail line of each step and its seconds
# A step that fails is recorded and the next one still runs; the exit status is non-zero if any failed.
#
# Python packages the GPU machine lacks (hydra-core, omegaconf, ...) can be carried as wheels in
# .whl/ at the repository root (see the device notes); they are installed to /tmp/site first.
set -u
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MLFLOW_DISABLE_TELEMETRY=true
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
status=0
step() {  # step NAME TIMEOUT_S COMMAND... : run, log to OUT/NAME.txt, record the outcome
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  echo "$name: rc=$rc seconds=$((SECONDS - start))" | tee -a "$out/summary.txt"
  [ "$rc" = 0 ] || status=1
}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free --format=csv
  "$PYTHON" -c "import torch; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
  "$PYTHON" -c "import cupy; print('cupy', cupy.__version__, cupy.cuda.runtime.runtimeGetVersion())"
} >"$out/env.txt" 2>&1
step pytest_gpu 240 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" tests
step bench_1e6 120 "$PYTHON" benchmarks/bench_kernels.py --device cuda --backends torch,cupy --scale 1 \
  --json "$out/bench_1e6.json" --markdown "$out/bench_1e6.md"
step bench_1e7 150 "$PYTHON" benchmarks/bench_kernels.py --device cuda --backends torch,cupy --scale 10 \
  --only uncertainty,bayesian,history --json "$out/bench_1e7.json" --markdown "$out/bench_1e7.md"
demo_start=$SECONDS
step demo_cuda 300 "$PYTHON" -m experiments.cli experiment=demo device=cuda tracking=disabled \
  hydra.launcher.n_jobs=4 threads=2 "hydra.sweep.dir=$out/demo_sweep"
echo "demo_cuda wall seconds: $((SECONDS - demo_start)) (2-core CPU reference: see README)" >>"$out/summary.txt"
exit $status
