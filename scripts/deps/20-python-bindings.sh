#!/usr/bin/env bash
# Tools that build the Python package and check its type stubs, installed into the .venv
# that 10-python.sh creates: maturin builds the pyo3 extension, mypy provides stubtest.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! .venv/bin/python -c 'import mypy.stubtest' 2>/dev/null || [ ! -x .venv/bin/maturin ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check 'maturin>=1.16,<2' mypy
fi
