#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need, then the Rust tests of every
# feature and the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/env.sh
cargo test --all-targets
cargo test --doc
if [ -d bindings/python/tests ]; then
    bindings/python/build.sh
    .venv/bin/python -m pytest -q bindings/python/tests
fi
