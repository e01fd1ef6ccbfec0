"""The ort backend computes what onnxruntime computes in Python, on every shipped model.

These tests fail, with the backend's own error, while inferwatch is built without a
working ort backend: they never skip, so that a missing backend cannot go unnoticed.
"""

from __future__ import annotations

import pytest

import inferwatch
from backend_checks import (
    check_outputs_match_onnxruntime,
    check_threads_give_exact_counts,
    check_vad_stream_matches_expected,
)
from model_cases import CLS_MODEL, Case, all_cases

CASES = all_cases()


@pytest.fixture(scope="module", autouse=True)
def ort_backend_loads() -> None:
    try:
        inferwatch.Session(CLS_MODEL, backend="ort")
    except inferwatch.InferwatchError as error:
        pytest.fail(f"the ort backend failed to load the classifier: {error}")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_ort_outputs_match_onnxruntime(case: Case) -> None:
    check_outputs_match_onnxruntime("ort", case)


def test_ort_vad_stream_matches_expected() -> None:
    check_vad_stream_matches_expected("ort")


def test_ort_threads_give_exact_counts() -> None:
    check_threads_give_exact_counts("ort")
