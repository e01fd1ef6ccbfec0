#!/usr/bin/env bash
# Checks NVML sampling on a machine with an NVIDIA GPU and driver, in about two minutes:
#   1. runs the PP-OCRv4 det model on the GPU (ONNX Runtime, CUDA execution provider) for
#      30 s with --gpu nvml and records the GPU load per inference;
#   2. runs it again for 30 s while a second process loads the same GPU, and checks that
#      foreign_gpu_load rises.
# The second process is a matrix-multiplication loop in PyTorch or CuPy, whichever imports
# (`pip install torch` or `pip install cupy-cuda12x`). ONNX Runtime with CUDA comes from
# `pip install onnxruntime-gpu==1.31.1`; point ORT_DYLIB_PATH at its libonnxruntime.so.1.31.1.
# Usage: scripts/gpu-check.sh [GPU-ID]   (GPU-ID: NVML index or UUID, default 0)
set -euo pipefail
cd "$(dirname "$0")/.."
gpu="${1:-0}"
seconds=30

if ! command -v nvidia-smi >/dev/null; then
    echo "gpu-check: nvidia-smi not found; this check needs an NVIDIA GPU and driver" >&2
    exit 1
fi
nvidia-smi -L
source scripts/env.sh
cargo build --release --bin inferwatch
bin="${CARGO_TARGET_DIR:-target}/release/inferwatch"
model=models/ppocr-det/model.onnx

backend_args=(--backend ort)
if "$bin" run --help | grep -q -- '--ep'; then
    backend_args+=(--ep cuda)
else
    echo "gpu-check: this build has no --ep flag; the model runs on the CPU and only the" \
        "second process loads the GPU" >&2
fi

python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
load_script='
import sys, time
end = time.time() + float(sys.argv[1])
try:
    import torch
    a = torch.randn(4096, 4096, device="cuda")
    while time.time() < end:
        a @ a
        torch.cuda.synchronize()
except ImportError:
    import cupy
    a = cupy.random.rand(4096, 4096, dtype=cupy.float32)
    while time.time() < end:
        a @ a
        cupy.cuda.Device().synchronize()
'
if ! "$python" -c 'import importlib.util as u, sys; sys.exit(not (u.find_spec("torch") or u.find_spec("cupy")))'; then
    echo "gpu-check: neither torch nor cupy imports in $python; install one for the second process" >&2
    exit 1
fi

run_model() {
    "$bin" run "$model" "${backend_args[@]}" --gpu nvml --gpu-id "$gpu" \
        --duration "$seconds" --window "$seconds" --json | tail -n 1
}

field() {
    "$python" -c 'import json, sys; v = json.loads(sys.argv[1]).get(sys.argv[2]); print("null" if v is None else f"{v:.1f}")' "$1" "$2"
}

echo "gpu-check: ${seconds} s alone on GPU $gpu"
alone=$(run_model)
echo "gpu-check: ${seconds} s with a second process loading GPU $gpu"
"$python" -c "$load_script" $((seconds + 5)) &
load_pid=$!
trap 'kill "$load_pid" 2>/dev/null || true' EXIT
sleep 3
shared=$(run_model)
wait "$load_pid" || true

printf '\n%-24s %12s %12s\n' metric alone shared
for name in inference_count avg_inference_time p99_inference_time gpu_load_per_inference foreign_gpu_load; do
    printf '%-24s %12s %12s\n' "$name" "$(field "$alone" "$name")" "$(field "$shared" "$name")"
done

alone_foreign=$(field "$alone" foreign_gpu_load)
shared_foreign=$(field "$shared" foreign_gpu_load)
if [ "$shared_foreign" = null ]; then
    echo "gpu-check: FAILED: foreign_gpu_load is null: per-process utilization is not supported on this GPU" >&2
    exit 1
fi
if "$python" -c 'import sys; a, b = sys.argv[1:]; a = 0.0 if a == "null" else float(a); sys.exit(not float(b) > a + 10)' \
    "$alone_foreign" "$shared_foreign"; then
    echo "gpu-check: OK: foreign_gpu_load rose from $alone_foreign to $shared_foreign %"
else
    echo "gpu-check: FAILED: foreign_gpu_load went from $alone_foreign to $shared_foreign % (expected a rise of more than 10 points)" >&2
    exit 1
fi
