#!/usr/bin/env bash
# gcc, which the NVML tests use to build a stand-in for the NVIDIA driver library.
set -euo pipefail
if ! command -v gcc >/dev/null; then
    apt-get update
    apt-get install -y gcc libc6-dev
fi
