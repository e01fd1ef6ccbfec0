"""instrument() times every run of an onnxruntime session without changing its results."""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime
import pytest

import inferwatch
from model_cases import CLS_MODEL, EXPECTED, TOLERANCE, load_input, ort_session


def test_instrumented_run_counts_and_returns_same_outputs() -> None:
    bare = ort_session(CLS_MODEL)
    monitor = inferwatch.Monitor(proc_cpu=False)
    session = inferwatch.instrument(ort_session(CLS_MODEL), monitor)
    x = load_input("ppocr-cls/x.npy")
    for _ in range(10):
        (probs,) = session.run(None, {"x": x})
        (reference,) = bare.run(None, {"x": x})
        assert np.array_equal(probs, reference)
    expected = EXPECTED["ppocr-cls"]["cases"][0]["probs"]
    assert np.abs(probs[0] - np.array(expected)).max() <= TOLERANCE
    snapshot = monitor.snapshot()
    assert snapshot["inference_count"] == 10
    assert snapshot["failed_inferences"] == 0
    assert snapshot["min_inference_time"] > 0


def test_instrumented_session_passes_other_attributes() -> None:
    inner = ort_session(CLS_MODEL)
    session = inferwatch.instrument(inner)
    assert session.session is inner
    assert isinstance(session.monitor, inferwatch.Monitor)
    assert [i.name for i in session.get_inputs()] == ["x"]
    assert session.get_providers() == ["CPUExecutionProvider"]
    output_name = EXPECTED["ppocr-cls"]["cases"][0]["output"]
    (probs,) = session.run([output_name], {"x": load_input("ppocr-cls/x.npy")}, None)
    assert probs.shape == (1, 2)
    assert session.monitor.snapshot()["inference_count"] == 1


def test_instrumented_run_that_raises_counts_failure() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False)
    session = inferwatch.instrument(ort_session(CLS_MODEL), monitor)
    x = load_input("ppocr-cls/x.npy")
    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument):
        session.run(None, {"x": x.astype(np.float64)})
    snapshot = monitor.snapshot()
    assert snapshot["failed_inferences"] == 1
    assert snapshot["inference_count"] == 0


def test_instrumented_threads_give_exact_counts() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False)
    session = inferwatch.instrument(ort_session(CLS_MODEL), monitor)
    x = load_input("ppocr-cls/x.npy")
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                session.run(None, {"x": x})
        except BaseException as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert monitor.snapshot()["inference_count"] == 100
