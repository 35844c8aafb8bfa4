#!/usr/bin/env bash
# The GPU checks of the issues, as one prepared command for a lent GPU machine:
#   1. `bench.py --device cuda`: parity, throughput, data share, CUDA memory, scaling and
#      profile on the GPU, written as the labelled CUDA part of a copy of RESULTS.md;
#   2. the `paper` profile (Mini-ImageNet-shaped, 5 inner steps, meta-batch 4) on random
#      stand-in images: step time and tasks/s, then a few hundred training iterations.
# There, python3 holds torch but not `higher`: carry its wheel in .whl/ (ignored by git),
# e.g. `pip download --no-deps -d .whl higher==0.2.1` here. Each part has its own time
# limit (9 minutes in all, under the device's 10 per command) and a failing part does not
# stop the next one.
#
#   bash benchmarks/cuda_check.sh OUT_DIR [ITERATIONS]      (device run: OUT_DIR=$OUT)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: cuda_check.sh OUT_DIR [ITERATIONS]}
iterations=${2:-300}
device=${DEVICE:-cuda}  # DEVICE=cpu tries the script here, without a GPU
python=${PYTHON:-python3}
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
    $python -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# mamllib and benchmarks are imported from this checkout, not from an installation.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MAMLLIB_CACHE=/tmp/mamllib-cache
status=0
part() {  # part NAME SECONDS LOG COMMAND...: run one part under a time limit, log it, go on
    local name=$1 limit=$2 log=$3
    shift 3
    timeout "$limit" "$@" 2>&1 | tr '\r' '\n' | tee "$out/$log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { echo "cuda_check: $name ended with status $rc" | tee -a "$out/$log"; status=1; }
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; } > "$out/device.txt"
cat "$out/device.txt"

cp benchmarks/RESULTS.md "$out/RESULTS.md"
part bench 270 bench.log $python -m benchmarks.bench --device "$device" --out "$out/RESULTS.md" ${BENCH_FLAGS:-}

fake=/tmp/fake-miniimagenet
part stand-in 60 fake.log $python -m benchmarks.fake_miniimagenet "$fake"
part paper-step 60 paper_step.md $python -m benchmarks.data_share --profile paper --data-root "$fake" \
    --device "$device" --repeats "${STEP_REPEATS:-50}"
rm -rf /tmp/paper-run
part paper-train 150 paper_train.log $python -m mamllib train --profile paper --data-root "$fake" \
    --device "$device" --iterations "$iterations" --val-every "$iterations" --checkpoint-every "$iterations" \
    --val-tasks 20 --test-tasks 40 ${TRAIN_FLAGS:-} --out /tmp/paper-run
exit $status
