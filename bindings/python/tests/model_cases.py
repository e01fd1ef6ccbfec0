"""The shipped models, their real inputs and the outputs onnxruntime computes for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime

MODELS = Path(__file__).resolve().parents[3] / "models"
CLS_MODEL = MODELS / "ppocr-cls" / "model.onnx"
DET_MODEL = MODELS / "ppocr-det" / "model.onnx"
VAD_MODEL = MODELS / "silero-vad" / "model.onnx"

# The largest difference allowed between inferwatch's outputs and onnxruntime's. Between
# onnxruntime runs with graph optimizations on and off, the outputs of these models differ
# by up to 5.2e-5 (models/README.md).
TOLERANCE = 1e-4

EXPECTED: dict[str, Any] = json.loads((MODELS / "expected.json").read_text())


class Case(NamedTuple):
    """One model with one set of real inputs."""

    id: str
    model: Path
    inputs: dict[str, np.ndarray]


def load_input(relative_path: str) -> np.ndarray:
    """Load a sample input given relative to models/."""
    array: np.ndarray = np.load(MODELS / relative_path)
    return array


def all_cases() -> list[Case]:
    """Every shipped model with each of its inputs listed in expected.json."""
    cases = []
    for model_name in ("ppocr-cls", "ppocr-det", "silero-vad", "silero-vad-sequence"):
        entry = EXPECTED[model_name]
        feeds = [(model_name, entry["inputs"])] if "inputs" in entry else []
        feeds += [(f"{model_name}/{case['name']}", case["inputs"]) for case in entry.get("cases", [])]
        for case_id, files in feeds:
            inputs = {name: load_input(path) for name, path in files.items()}
            cases.append(Case(case_id, MODELS / entry["model"], inputs))
    return cases


def ort_session(model: Path) -> onnxruntime.InferenceSession:
    """An onnxruntime session on the CPU, the reference for every comparison."""
    return onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])


def ort_outputs(model: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run `model` in onnxruntime and return its outputs by name."""
    session = ort_session(model)
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs)))


def max_abs_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max())


def stream_vad(run: Any, audio: np.ndarray, chunk: int, context: int) -> list[float]:
    """Run the single-chunk VAD over `audio`, carrying the state and the last `context`
    samples of each chunk into the next call, as models/verify.py does. `run` takes the
    input dict and returns the outputs by name."""
    state = np.zeros((2, 1, 128), dtype=np.float32)
    previous = np.zeros(context, dtype=np.float32)
    probs = []
    for start in range(0, len(audio), chunk):
        samples = audio[start : start + chunk]
        outputs = run({"input": np.concatenate([previous, samples])[np.newaxis], "state": state})
        probs.append(float(outputs["output"][0, 0]))
        state = outputs["stateN"]
        previous = samples[-context:]
    return probs
