#!/usr/bin/env bash
# Builds inferwatch and runs the main job for 10 seconds on the shipped text-direction
# classifier with its real sample input. Extra arguments are passed to `inferwatch run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/env.sh
cargo build --release
exec "${CARGO_TARGET_DIR:-target}/release/inferwatch" run models/ppocr-cls/model.onnx --duration 10 "$@"
