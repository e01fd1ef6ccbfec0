# Sourced by the scripts: points the ort backend at the ONNX Runtime library of .venv.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    lib=$(ls "$root"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -n 1 || true)
    if [ -n "$lib" ]; then
        export ORT_DYLIB_PATH="$lib"
    fi
fi
export PATH="$root/.venv/bin:$PATH"
