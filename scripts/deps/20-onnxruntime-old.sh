#!/usr/bin/env bash
# The library of ONNX Runtime 1.20.1, taken from its PyPI wheel into .venv/onnxruntime-1.20.1,
# for the test that checks that the ort backend rejects a release older than 1.31.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=.venv/onnxruntime-1.20.1/libonnxruntime.so.1.20.1
if [ -f "$target" ]; then
    exit 0
fi
if [ ! -x .venv/bin/pip ]; then
    bash scripts/deps/10-python.sh
fi
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
.venv/bin/pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$download" onnxruntime==1.20.1
.venv/bin/python - "$download" "$target" <<'PY'
import glob
import os
import sys
import zipfile

download, target = sys.argv[1:]
wheel = glob.glob(os.path.join(download, "onnxruntime-1.20.1-*.whl"))[0]
with zipfile.ZipFile(wheel) as archive:
    data = archive.read("onnxruntime/capi/libonnxruntime.so.1.20.1")
os.makedirs(os.path.dirname(target), exist_ok=True)
with open(target + ".part", "wb") as out:
    out.write(data)
os.replace(target + ".part", target)
PY
