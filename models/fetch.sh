#!/usr/bin/env bash
# Download the pinned wheels from PyPI, extract the ONNX models (and the
# silero-vad license) into this folder and check them against SHA256SUMS.
#
# Usage: models/fetch.sh          download, check, then copy into place
#        models/fetch.sh --check  only check the files already in place
#
# Requires bash, python3 with pip, and sha256sum. Works from any directory.
# Set PYTHON to use another interpreter (default: python3).
set -euo pipefail

models_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"

# check_sums DIR WHAT: check the files under DIR, described as WHAT in errors.
check_sums() {
    local dir="$1" what="$2"
    if ! (cd "$dir" && sha256sum --quiet -c "$models_dir/SHA256SUMS"); then
        echo "error: sha256 mismatch in $what (see the FAILED lines above)." >&2
        echo "The expected sums are in $models_dir/SHA256SUMS." >&2
        return 1
    fi
}

if [[ "${1:-}" == "--check" ]]; then
    check_sums "$models_dir" "the files in $models_dir" || exit 1
    echo "all files match $models_dir/SHA256SUMS"
    exit 0
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--check]" >&2
    exit 2
fi

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

# pip rejects a download whose hash differs from the one given here.
cat >"$work_dir/requirements.txt" <<'EOF'
rapidocr-onnxruntime==1.4.4 --hash=sha256:971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf
silero-vad==6.2.3 --hash=sha256:7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8
EOF
"$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    -r "$work_dir/requirements.txt" -d "$work_dir/wheels"

"$python" - "$work_dir/wheels" "$work_dir/staging" <<'EOF'
import shutil
import sys
import zipfile
from pathlib import Path

wheels, staging = Path(sys.argv[1]), Path(sys.argv[2])
# (wheel file, member inside the wheel, destination under models/)
members = [
    ("rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
     "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
     "ppocr-cls/model.onnx"),
    ("rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
     "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
     "ppocr-det/model.onnx"),
    ("silero_vad-6.2.3-py3-none-any.whl",
     "silero_vad/data/silero_vad_openvino_16k.onnx",
     "silero-vad/model.onnx"),
    ("silero_vad-6.2.3-py3-none-any.whl",
     "silero_vad-6.2.3.dist-info/licenses/LICENSE",
     "silero-vad/LICENSE"),
    ("silero_vad-6.2.3-py3-none-any.whl",
     "silero_vad/data/silero_vad_16k_sequence.onnx",
     "silero-vad-sequence/model.onnx"),
    ("silero_vad-6.2.3-py3-none-any.whl",
     "silero_vad-6.2.3.dist-info/licenses/LICENSE",
     "silero-vad-sequence/LICENSE"),
]
for wheel, member, destination in members:
    target = staging / destination
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels / wheel) as archive, archive.open(member) as source:
        with open(target, "wb") as output:
            shutil.copyfileobj(source, output)
EOF

if ! check_sums "$work_dir/staging" "the files extracted from the wheels"; then
    echo "Nothing was copied into $models_dir." >&2
    exit 1
fi

# Copy only after every file has passed the check.
(cd "$work_dir/staging" && find . -type f) | while read -r file; do
    mkdir -p "$models_dir/$(dirname "$file")"
    cp "$work_dir/staging/$file" "$models_dir/$file"
    echo "placed models/${file#./}"
done
echo "all files match $models_dir/SHA256SUMS"
