"""The tract backend computes what onnxruntime computes, on every shipped model and input."""

from __future__ import annotations

import numpy as np
import pytest

import inferwatch
from backend_checks import (
    check_outputs_match_onnxruntime,
    check_threads_give_exact_counts,
    check_vad_stream_matches_expected,
)
from model_cases import CLS_MODEL, DET_MODEL, EXPECTED, TOLERANCE, Case, all_cases, load_input

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_tract_outputs_match_onnxruntime(case: Case) -> None:
    check_outputs_match_onnxruntime("tract", case)


def test_tract_vad_stream_matches_expected() -> None:
    check_vad_stream_matches_expected("tract")


def test_tract_threads_give_exact_counts() -> None:
    check_threads_give_exact_counts("tract")


@pytest.mark.parametrize("case", EXPECTED["ppocr-cls"]["cases"], ids=lambda case: case["name"])
def test_classifier_probabilities_match_expected(case: dict) -> None:
    session = inferwatch.Session(CLS_MODEL)
    outputs = session.run({"x": load_input(case["inputs"]["x"])})
    probs = outputs[case["output"]]
    assert list(probs.shape) == case["output_shape"]
    assert np.abs(probs[0] - np.array(case["probs"])).max() <= TOLERANCE
    assert int(probs[0].argmax()) == case["label"]


def test_fixed_input_shapes_give_same_outputs() -> None:
    x = load_input("ppocr-det/x.npy")
    free = inferwatch.Session(DET_MODEL).run({"x": x})
    fixed = inferwatch.Session(DET_MODEL, input_shapes={"x": list(x.shape)}).run({"x": x})
    name = EXPECTED["ppocr-det"]["output"]
    assert np.abs(free[name] - fixed[name]).max() <= TOLERANCE


def test_non_contiguous_input_is_copied_in_order() -> None:
    x = load_input("ppocr-cls/x.npy")
    # The same values in Fortran order and as a strided view of a larger array.
    fortran = np.asfortranarray(x)
    padded = np.zeros((1, 3, 48, 2 * x.shape[3]), dtype=np.float32)
    padded[..., ::2] = x
    session = inferwatch.Session(CLS_MODEL)
    reference = next(iter(session.run({"x": x}).values()))
    for layout in (fortran, padded[..., ::2]):
        assert not layout.flags.c_contiguous
        probs = next(iter(session.run({"x": layout}).values()))
        assert np.array_equal(probs, reference)


def test_outputs_are_writable_numpy_arrays() -> None:
    outputs = inferwatch.Session(CLS_MODEL).run({"x": load_input("ppocr-cls/x.npy")})
    probs = next(iter(outputs.values()))
    assert isinstance(probs, np.ndarray)
    assert probs.flags.writeable
    assert probs.flags.c_contiguous


def test_session_describes_model_before_and_after_first_run() -> None:
    session = inferwatch.Session(CLS_MODEL)
    assert session.backend == "tract"
    assert session.path == CLS_MODEL
    # The input's declared shape has free dimensions, so the model waits for the first run.
    assert not session.loaded
    assert [(info.name, info.dtype) for info in session.inputs] == [("x", "float32")]
    assert session.outputs == []
    session.run({"x": load_input("ppocr-cls/x.npy")})
    assert session.loaded
    assert repr(session.inputs[0]) == "TensorInfo(name='x', dtype='float32', shape=(1, 3, 48, 192))"
    output = session.outputs[0]
    assert (output.name, output.dtype, output.shape) == (
        EXPECTED["ppocr-cls"]["cases"][0]["output"],
        "float32",
        (1, 2),
    )


def test_session_with_concrete_inputs_loads_at_once() -> None:
    session = inferwatch.Session(CLS_MODEL, input_shapes={"x": [1, 3, 48, 192]})
    assert session.loaded
    assert session.inputs[0].shape == (1, 3, 48, 192)


def test_cases_cover_every_model_input() -> None:
    ids = {case.id for case in CASES}
    assert ids == {
        "ppocr-cls/upright",
        "ppocr-cls/upside_down",
        "ppocr-det",
        "silero-vad/speech_after_stream",
        "silero-vad/speech_zero_state",
        "silero-vad/silence_zero_state",
        "silero-vad-sequence",
    }
