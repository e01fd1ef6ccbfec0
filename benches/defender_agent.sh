#!/usr/bin/env bash
# Runs benches/defender_agent.py in .venv, installing the AWS Device Defender agent there
# first when it is missing. Arguments go to the script.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import AWSIoTDeviceDefenderAgentSDK' 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check AWSIoTDeviceDefenderAgentSDK==2.0.0
fi
exec .venv/bin/python benches/defender_agent.py "$@"
