#!/bin/bash
# The OpenCL tests and benchmark on a lent GPU machine (NVIDIA OpenCL), from the checkout's root with
# .whl carried (pyopencl, pytools, platformdirs, siphash24 and rapidocr-onnxruntime wheels plus
# gpu-prelude.sh; see ../shared/device/README.md). Logs and the benchmark table go to $OUT.
set -o pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
bash .whl/gpu-prelude.sh || exit 1
export PYTHONPATH=/tmp/site:$PWD OCL_ICD_VENDORS=/tmp/icd PYTHONUNBUFFERED=1
python3 -c "from lwnn.backends.opencl import describe_devices; print(*describe_devices(), sep='\n')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout "${TEST_TIMEOUT:-300}" python3 -m pytest -q -n 4 --dist loadfile -p no:cacheprovider \
    tests/test_opencl.py tests/test_ops.py tests/test_opencl_ops.py tests/test_opencl_models.py tests/test_opencl_int.py -rs 2>&1 \
    | grep -v '^|' | tee "$OUT/gpu_tests.log" | tail -25
fi
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  timeout "${BENCH_TIMEOUT:-280}" python3 benchmarks/bench_opencl.py --out "$OUT/opencl_gpu.md" ${BENCH_ARGS:-} 2>&1 \
    | tee "$OUT/gpu_bench.log" | tail -60
fi
for p in ${PROFILE:-}; do  # e.g. PROFILE="det:16 cls:16"
  python3 benchmarks/bench_opencl.py --profile "${p%%:*}" "${p##*:}" 2>&1 | tee -a "$OUT/gpu_profile.log"
done
