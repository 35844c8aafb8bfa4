#!/usr/bin/env bash
# The GPU checks of the issues, as one prepared command for a lent GPU machine:
#   1. `bench.py --device cuda`: parity, throughput, data share, CUDA memory, scaling and
#      profile on the GPU, written as the labelled CUDA part of a copy of RESULTS.md;
#   2. the `paper` profile (Mini-ImageNet-shaped, 5 inner steps, meta-batch 4) for a few
#      hundred iterations on random stand-in images, reporting meta-training tasks/s.
# There, python3 holds torch but not `higher`: carry its wheel in .whl/ (see the device
# tool's README), e.g. `pip download --no-deps -d .whl higher==0.2.1` here.
#
#   bash benchmarks/cuda_check.sh OUT_DIR [ITERATIONS]      (device run: OUT_DIR=$OUT)
set -euo pipefail
out=${1:?usage: cuda_check.sh OUT_DIR [ITERATIONS]}
iterations=${2:-300}
device=${DEVICE:-cuda}  # DEVICE=cpu tries the script here, without a GPU
python=${PYTHON:-python3}
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
    $python -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 MAMLLIB_CACHE=/tmp/mamllib-cache
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; } | tee "$out/device.txt"

cp benchmarks/RESULTS.md "$out/RESULTS.md"
timeout 420 $python benchmarks/bench.py --device "$device" --out "$out/RESULTS.md" ${BENCH_FLAGS:-} \
    | tee "$out/bench.log"

fake=/tmp/fake-miniimagenet
$python benchmarks/fake_miniimagenet.py "$fake"
# Step time and tasks/s of the paper profile, sampling from the stand-in as training does.
$python benchmarks/data_share.py --profile paper --data-root "$fake" --device "$device" --repeats "${STEP_REPEATS:-50}" \
    | tee "$out/paper_step.md"
# The whole training command for a few hundred iterations (small validation and meta-test).
rm -rf /tmp/paper-run
timeout 300 $python -m mamllib train --profile paper --data-root "$fake" --device "$device" \
    --iterations "$iterations" --val-every "$iterations" --checkpoint-every "$iterations" \
    --val-tasks 20 --test-tasks 40 ${TRAIN_FLAGS:-} --out /tmp/paper-run 2>&1 | tr '\r' '\n' | tail -n 20 \
    | tee "$out/paper_train.log"
