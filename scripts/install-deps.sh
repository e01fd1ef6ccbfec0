#!/usr/bin/env bash
# Installs what building and testing inferwatch needs on a fresh Debian machine: each file in
# scripts/deps/ installs the parts of one component. Safe to run again; finished steps are
# skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
for step in scripts/deps/*.sh; do
    bash "$step"
done
