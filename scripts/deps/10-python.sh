#!/usr/bin/env bash
# A virtual environment in .venv with ONNX Runtime 1.31.1, whose libonnxruntime the ort
# backend loads at run time, and the Python test tools.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import onnxruntime, numpy, pytest' 2>/dev/null \
    || [ "$(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)')" != "1.31.1" ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check \
        onnxruntime==1.31.1 numpy pytest
fi
