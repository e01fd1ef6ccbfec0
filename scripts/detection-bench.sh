#!/usr/bin/env bash
# Detection benchmark: builds inferwatch and runs the scenarios of scripts/detection-bench.py
# (all cores, one thread at nice 19, benign, feedback 85/180). Arguments go to the Python
# script, for example: scripts/detection-bench.sh --benign-secs 120 --scenarios benign
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin inferwatch
exec python3 scripts/detection-bench.py --bin "$target/release/inferwatch" "$@"
