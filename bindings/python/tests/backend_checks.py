"""Checks that a backend computes the same outputs as onnxruntime, shared by the tests of
each backend."""

from __future__ import annotations

import threading

import numpy as np

import inferwatch
from model_cases import (
    CLS_MODEL,
    EXPECTED,
    TOLERANCE,
    VAD_MODEL,
    Case,
    load_input,
    max_abs_difference,
    ort_outputs,
    stream_vad,
)


def check_outputs_match_onnxruntime(backend: str, case: Case) -> None:
    session = inferwatch.Session(case.model, backend=backend)
    outputs = session.run(case.inputs)
    reference = ort_outputs(case.model, case.inputs)
    assert list(outputs) == list(reference)
    for name, expected in reference.items():
        actual = outputs[name]
        assert actual.shape == expected.shape, name
        assert actual.dtype == expected.dtype, name
        assert max_abs_difference(actual, expected) <= TOLERANCE, name
    snapshot = session.monitor.snapshot()
    assert snapshot["inference_count"] == 1
    assert snapshot["failed_inferences"] == 0


def check_vad_stream_matches_expected(backend: str) -> None:
    stream = EXPECTED["silero-vad"]["stream"]
    session = inferwatch.Session(VAD_MODEL, backend=backend)
    audio = load_input(stream["audio"])
    probs = stream_vad(session.run, audio, stream["chunk"], stream["context"])
    assert len(probs) == stream["chunks"]
    assert max_abs_difference(np.array(probs), np.array(stream["probs"])) <= TOLERANCE
    assert sum(p > 0.5 for p in probs) == stream["chunks_above_0.5"]
    assert session.monitor.snapshot()["inference_count"] == stream["chunks"]


def check_threads_give_exact_counts(backend: str, threads: int = 4, runs: int = 25) -> None:
    monitor = inferwatch.Monitor()
    session = inferwatch.Session(CLS_MODEL, backend=backend, monitor=monitor)
    x = load_input("ppocr-cls/x.npy")
    expected_probs = EXPECTED["ppocr-cls"]["cases"][0]["probs"]
    results: list[np.ndarray] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(runs):
                probs = next(iter(session.run({"x": x}).values()))
                with lock:
                    results.append(probs)
        except BaseException as error:  # reported by the assert below
            errors.append(error)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert errors == []
    assert len(results) == threads * runs
    for probs in results:
        assert max_abs_difference(probs[0], np.array(expected_probs, np.float32)) <= TOLERANCE
    snapshot = monitor.snapshot()
    assert snapshot["inference_count"] == threads * runs
    assert snapshot["failed_inferences"] == 0
    assert snapshot["dropped_records"] == 0
