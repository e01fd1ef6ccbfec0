#!/usr/bin/env python3
"""Run every model on its sample inputs with onnxruntime and record the outputs.

Requirements: Python 3.9 or newer with numpy and onnxruntime (the values in
expected.json come from onnxruntime 1.31.1 on x86-64 Linux). Run
models/fetch.sh and models/make_inputs.py first.

Usage:
  python models/verify.py           write models/expected.json and print a summary
  python models/verify.py --check   compare with models/expected.json and exit 1
                                    if a value differs by more than --tolerance
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime

MODELS_DIR = Path(__file__).resolve().parent
EXPECTED_PATH = MODELS_DIR / "expected.json"

# RapidOCR's DB post-processing binarizes the detector map at this threshold
# (Det.thresh in the config.yaml of rapidocr-onnxruntime 1.4.4).
DET_THRESHOLD = 0.3
CLS_LABELS = ["0", "180"]  # rotation in degrees, per output index


def load(relative_path: str) -> np.ndarray:
    return np.load(MODELS_DIR / relative_path)


def session(relative_path: str) -> onnxruntime.InferenceSession:
    path = MODELS_DIR / relative_path
    if not path.exists():
        sys.exit(f"model not found: {path}. Run models/fetch.sh first.")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(model: onnxruntime.InferenceSession, feeds: dict[str, str]) -> list[np.ndarray]:
    return model.run(None, {name: load(path) for name, path in feeds.items()})


def verify_cls() -> dict:
    model_path = "ppocr-cls/model.onnx"
    model = session(model_path)
    cases = []
    for name, input_path, expected_label in [
        ("upright", "ppocr-cls/x.npy", 0),
        ("upside_down", "ppocr-cls/x_upside_down.npy", 1),
    ]:
        feeds = {"x": input_path}
        (probs,) = run(model, feeds)
        label = int(probs[0].argmax())
        if label != expected_label:
            raise AssertionError(f"{input_path}: label {label}, expected {expected_label}")
        cases.append(
            {
                "name": name,
                "inputs": feeds,
                "output": "save_infer_model/scale_0.tmp_1",
                "output_shape": list(probs.shape),
                "probs": [float(p) for p in probs[0]],
                "label": label,
                "label_name": CLS_LABELS[label],
            }
        )
    return {"model": model_path, "labels": CLS_LABELS, "cases": cases}


def verify_det() -> dict:
    model_path = "ppocr-det/model.onnx"
    feeds = {"x": "ppocr-det/x.npy"}
    (prob_map,) = run(session(model_path), feeds)
    prob_map2d = prob_map[0, 0]

    boxes = json.loads((MODELS_DIR / "ppocr-det/text_boxes.json").read_text())
    inside = np.zeros(prob_map2d.shape, dtype=bool)
    lines = []
    for line in boxes["lines"]:
        x0, y0, x1, y1 = line["box"]
        inside[y0:y1, x0:x1] = True
        region = prob_map2d[y0:y1, x0:x1]
        lines.append(
            {
                "text": line["text"],
                "box": line["box"],
                "mean": float(region.mean()),
                "fraction_above_threshold": float((region > DET_THRESHOLD).mean()),
            }
        )

    outside = prob_map2d[~inside]
    result = {
        "model": model_path,
        "inputs": feeds,
        "boxes": "ppocr-det/text_boxes.json",
        "output": "sigmoid_0.tmp_0",
        "output_shape": list(prob_map.shape),
        "threshold": DET_THRESHOLD,
        "mean_inside_boxes": float(prob_map2d[inside].mean()),
        "mean_outside_boxes": float(outside.mean()),
        "max_outside_boxes": float(outside.max()),
        "fraction_above_threshold_outside_boxes": float((outside > DET_THRESHOLD).mean()),
        "lines": lines,
    }

    if not result["mean_inside_boxes"] > 0.3 > result["max_outside_boxes"]:
        raise AssertionError(f"detector map does not separate text from background: {result}")
    return result


def stream_vad(model: onnxruntime.InferenceSession, audio: np.ndarray, chunk: int, context: int) -> list[float]:
    """Run the VAD chunk by chunk, carrying the state and the last `context`
    samples of each chunk into the next call."""
    state = np.zeros((2, 1, 128), dtype=np.float32)
    previous = np.zeros(context, dtype=np.float32)
    probs = []
    for start in range(0, len(audio), chunk):
        samples = audio[start : start + chunk]
        chunk_input = np.concatenate([previous, samples])[np.newaxis]
        prob, state = model.run(None, {"input": chunk_input, "state": state})
        probs.append(float(prob[0, 0]))
        previous = samples[-context:]
    return probs


def verify_vad() -> dict:
    model_path = "silero-vad/model.onnx"
    model = session(model_path)
    cases = []
    for name, feeds in [
        ("speech_after_stream", {"input": "silero-vad/speech.npy", "state": "silero-vad/speech_state.npy"}),
        ("speech_zero_state", {"input": "silero-vad/speech.npy", "state": "silero-vad/state.npy"}),
        ("silence_zero_state", {"input": "silero-vad/silence.npy", "state": "silero-vad/state.npy"}),
    ]:
        prob, state = run(model, feeds)
        cases.append(
            {
                "name": name,
                "inputs": feeds,
                "output": "output",
                "prob": float(prob[0, 0]),
                "stateN_shape": list(state.shape),
            }
        )

    info = json.loads((MODELS_DIR / "silero-vad/speech_16k.json").read_text())
    chunk, context = info["chunk"], info["context"]
    audio = load("silero-vad/speech_16k.npy")
    probs = stream_vad(model, audio, chunk, context)
    first_speech_chunk = info["speech_samples"][0] // chunk
    stream = {
        "audio": "silero-vad/speech_16k.npy",
        "chunk": chunk,
        "context": context,
        "probs": probs,
        "max_before_speech": max(probs[:first_speech_chunk]),
        "max": max(probs),
        "last": probs[-1],
        "chunks_above_0.5": sum(p > 0.5 for p in probs),
        "chunks": len(probs),
    }
    if not cases[0]["prob"] > 0.5 > cases[2]["prob"]:
        raise AssertionError(f"VAD does not separate speech from silence: {cases}")
    return {"model": model_path, "cases": cases, "stream": stream}


def verify_vad_sequence(stream_probs: list[float]) -> dict:
    model_path = "silero-vad-sequence/model.onnx"
    feeds = {
        "input": "silero-vad-sequence/input.npy",
        "h": "silero-vad-sequence/h.npy",
        "c": "silero-vad-sequence/c.npy",
    }
    probs, hn, cn = run(session(model_path), feeds)
    return {
        "model": model_path,
        "inputs": feeds,
        "output": "speech_probs",
        "output_shape": list(probs.shape),
        "hn_shape": list(hn.shape),
        "cn_shape": list(cn.shape),
        "probs": [float(p) for p in probs],
        "max_abs_difference_from_silero_vad_stream": float(
            np.abs(probs - np.array(stream_probs, dtype=np.float32)).max()
        ),
    }


def compute_expected() -> dict:
    vad = verify_vad()
    return {
        "onnxruntime_version": onnxruntime.__version__,
        "ppocr-cls": verify_cls(),
        "ppocr-det": verify_det(),
        "silero-vad": vad,
        "silero-vad-sequence": verify_vad_sequence(vad["stream"]["probs"]),
    }


def compare(expected, actual, tolerance: float, path: str = "") -> list[str]:
    """Return a message for each value in `actual` that differs from `expected`."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = sorted(set(expected) | set(actual))
        return [m for k in keys for m in compare(expected.get(k), actual.get(k), tolerance, f"{path}.{k}")]
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [m for i, (e, a) in enumerate(zip(expected, actual)) for m in compare(e, a, tolerance, f"{path}[{i}]")]
    if isinstance(expected, float) and isinstance(actual, float):
        return [] if abs(expected - actual) <= tolerance else [f"{path}: expected {expected}, got {actual}"]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


def to_json(value: dict) -> str:
    """Format as indented JSON, with each list of numbers on one line."""
    text = json.dumps(value, indent=2)
    number_list = re.compile(r"\[[-+.0-9eE,\s]*\]")
    return number_list.sub(lambda m: json.dumps(json.loads(m.group(0))), text) + "\n"


def print_summary(expected: dict) -> None:
    for case in expected["ppocr-cls"]["cases"]:
        print(f"ppocr-cls {case['name']}: label {case['label_name']} probs {case['probs']}")
    det = expected["ppocr-det"]
    print(
        f"ppocr-det: mean inside boxes {det['mean_inside_boxes']:.4f}, "
        f"mean outside {det['mean_outside_boxes']:.3g}, max outside {det['max_outside_boxes']:.3g}"
    )
    for case in expected["silero-vad"]["cases"]:
        print(f"silero-vad {case['name']}: {case['prob']:.6f}")
    stream = expected["silero-vad"]["stream"]
    print(
        f"silero-vad stream: {stream['chunks_above_0.5']}/{stream['chunks']} chunks above 0.5, "
        f"max before speech {stream['max_before_speech']:.4f}"
    )
    sequence = expected["silero-vad-sequence"]
    print(
        "silero-vad-sequence: max abs difference from the stream "
        f"{sequence['max_abs_difference_from_silero_vad_stream']:.3g}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with expected.json instead of writing it")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="absolute tolerance for --check (default 1e-4)")
    args = parser.parse_args()

    actual = compute_expected()
    print_summary(actual)
    if args.check:
        if not EXPECTED_PATH.exists():
            sys.exit(f"not found: {EXPECTED_PATH}. Run models/verify.py without --check to write it.")
        expected = json.loads(EXPECTED_PATH.read_text())
        expected.pop("onnxruntime_version", None)
        actual.pop("onnxruntime_version")
        differences = compare(expected, actual, args.tolerance)
        for message in differences:
            print(message, file=sys.stderr)
        if differences:
            sys.exit(f"check failed: {len(differences)} difference(s) from {EXPECTED_PATH}")
        print(f"all values match {EXPECTED_PATH} within {args.tolerance}")
    else:
        EXPECTED_PATH.write_text(to_json(actual))
        print(f"wrote {EXPECTED_PATH}")


if __name__ == "__main__":
    main()
