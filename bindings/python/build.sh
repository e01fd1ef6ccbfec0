#!/usr/bin/env bash
# Builds the Python package as a wheel and installs it into the repository's .venv (made by
# scripts/deps/10-python.sh; maturin comes from scripts/deps/20-python-bindings.sh).
#
# The wheel is built in the dev profile, which compiles every dependency at opt-level 3, so
# tract and ndarray run at full speed. The first build in a target directory compiles
# tract once for this crate's features; later builds only compile inferwatch and the
# binding. CARGO_PROFILE_DEV_OPT_LEVEL raises those two crates to opt-level 3 as well, so
# the recording path runs as optimized code without the release profile, which would
# compile tract again (about 6 minutes on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
wheels="${CARGO_TARGET_DIR:-$root/target}/wheels"
rm -f "$wheels"/inferwatch-*.whl
CARGO_PROFILE_DEV_OPT_LEVEL=3 VIRTUAL_ENV="$root/.venv" .venv/bin/maturin build \
    --profile dev --manifest-path bindings/python/Cargo.toml --out "$wheels" \
    --interpreter "$root/.venv/bin/python"
.venv/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    "$wheels"/inferwatch-*.whl
