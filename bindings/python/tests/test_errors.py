"""Every error maps onto the right exception class with a message that names the value and
the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import inferwatch
from model_cases import CLS_MODEL, load_input


def test_hierarchy() -> None:
    for error in (
        inferwatch.ModelError,
        inferwatch.InputError,
        inferwatch.ConfigError,
        inferwatch.ExportError,
    ):
        assert issubclass(error, inferwatch.InferwatchError)
        assert error.__module__ == "inferwatch"
    assert issubclass(inferwatch.InferwatchError, Exception)
    assert issubclass(inferwatch.InputError, ValueError)
    assert issubclass(inferwatch.ConfigError, ValueError)
    assert not issubclass(inferwatch.ModelError, ValueError)


def test_missing_model_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.onnx"
    with pytest.raises(inferwatch.ModelError) as error:
        inferwatch.Session(path)
    assert str(error.value) == f"failed to read model {path}: No such file or directory (os error 2)"


def test_file_that_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("this is a text file, not a protobuf")
    with pytest.raises(inferwatch.ModelError, match="is not a valid ONNX model") as error:
        inferwatch.Session(path)
    assert str(path) in str(error.value)
    assert "exported as .onnx" in str(error.value)


def test_unsupported_operator_names_python_fix(tmp_path: Path) -> None:
    path = tmp_path / "custom_op.onnx"
    path.write_bytes(model_with_operator("NoSuchOp"))
    with pytest.raises(inferwatch.ModelError) as error:
        inferwatch.Session(path)
    message = str(error.value)
    assert "uses operator NoSuchOp" in message
    assert 'node "custom"' in message
    assert message.endswith('try backend="ort"')


def test_unknown_backend() -> None:
    with pytest.raises(inferwatch.ConfigError) as error:
        inferwatch.Session(CLS_MODEL, backend="onnx")
    assert str(error.value) == (
        'invalid backend in Session(): unknown backend "onnx": expected tract or ort'
    )


def test_input_shapes_that_do_not_fit() -> None:
    with pytest.raises(inferwatch.InputError) as error:
        inferwatch.Session(CLS_MODEL, input_shapes={"x": [1, 4, 48, 192]})
    # Rejected by the declared shape [?,3,?,?] when tract reads it, else by the failed
    # optimization; both messages name the shape given.
    assert "[1,4,48,192]" in str(error.value)


def test_first_run_shapes_that_do_not_fit() -> None:
    session = inferwatch.Session(CLS_MODEL)
    x = load_input("ppocr-cls/x.npy")
    with pytest.raises(inferwatch.InputError, match=r"\[3,48,192\]"):
        session.run({"x": x[0]})
    assert not session.loaded
    # The failed first run fixed nothing: the right shape still loads the model.
    assert next(iter(session.run({"x": x}).values())).shape == (1, 2)
    assert session.loaded


@pytest.fixture(scope="module")
def session() -> inferwatch.Session:
    """A classifier session loaded for the sample input's shape by one first run."""
    session = inferwatch.Session(CLS_MODEL, monitor=inferwatch.Monitor(proc_cpu=False))
    session.run({"x": load_input("ppocr-cls/x.npy")})
    return session


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return load_input("ppocr-cls/x.npy")


def test_missing_input(session: inferwatch.Session) -> None:
    with pytest.raises(inferwatch.InputError) as error:
        session.run({})
    assert str(error.value) == (
        'missing input "x" (float32[1,3,48,192]): add it to the dict passed to run()'
    )


def test_unknown_input(session: inferwatch.Session, x: np.ndarray) -> None:
    with pytest.raises(inferwatch.InputError) as error:
        session.run({"x": x, "y": x})
    assert str(error.value) == (
        'the model has no input named "y"; its inputs are x float32[1,3,48,192]'
    )


def test_wrong_element_type(session: inferwatch.Session, x: np.ndarray) -> None:
    with pytest.raises(inferwatch.InputError) as error:
        session.run({"x": x.astype(np.float64)})
    assert str(error.value) == (
        'input "x" has element type float64 but the model expects float32'
    )


def test_wrong_shape(session: inferwatch.Session, x: np.ndarray) -> None:
    with pytest.raises(inferwatch.InputError) as error:
        session.run({"x": x[0]})
    assert str(error.value) == (
        'input "x" has shape [3,48,192] but the model expects [1,3,48,192] (the tract backend '
        "optimized the model for the shapes of the first run: create a Session per input "
        'shape, or use backend="ort")'
    )


def test_unsupported_dtype(session: inferwatch.Session, x: np.ndarray) -> None:
    with pytest.raises(inferwatch.InputError) as error:
        session.run({"x": x.astype(np.float16)})
    assert str(error.value) == (
        'input "x" has dtype float16, which inferwatch does not support: convert it to '
        "float32, float64, int64, int32, uint8 or bool in native byte order with "
        "array.astype(...)"
    )
    with pytest.raises(inferwatch.InputError, match="dtype >f4"):
        session.run({"x": x.astype(">f4")})


def test_value_that_is_not_an_array(session: inferwatch.Session) -> None:
    with pytest.raises(inferwatch.InputError) as error:
        session.run({"x": [[1.0, 2.0]]})  # type: ignore[dict-item]
    assert str(error.value) == (
        'input "x" is a list, not a numpy.ndarray: convert it with numpy.asarray(value, dtype=...)'
    )


def test_input_name_that_is_not_str(session: inferwatch.Session, x: np.ndarray) -> None:
    with pytest.raises(inferwatch.InputError, match="input name 0 is not a str"):
        session.run({0: x})  # type: ignore[dict-item]


def test_rejected_inputs_count_as_failed() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False)
    session = inferwatch.Session(CLS_MODEL, monitor=monitor, input_shapes={"x": [1, 3, 48, 192]})
    x = load_input("ppocr-cls/x.npy")
    for bad in ({}, {"x": x.astype(np.float16)}, {"x": x[0]}):
        with pytest.raises(inferwatch.InputError):
            session.run(bad)
    session.run({"x": x})
    snapshot = monitor.snapshot()
    assert snapshot["failed_inferences"] == 3
    assert snapshot["inference_count"] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": -1}, 'invalid window "-1" in Monitor(): expected a positive number of seconds'),
        ({"window": float("nan")}, 'invalid window "NaN" in Monitor()'),
        ({"sample_period": 0}, 'invalid sample_period "0" in Monitor()'),
        (
            {"load_files": {"gpu_percent": "/var/gpu_load_fb"}},
            'invalid load_files key in Monitor(): unknown load metric "gpu_percent"',
        ),
        ({"load_files": {"gpu": 5}}, 'invalid load_files["gpu"] "5" in Monitor()'),
    ],
)
def test_invalid_monitor_options(options: dict, message: str) -> None:
    with pytest.raises(inferwatch.ConfigError) as error:
        inferwatch.Monitor(**options)
    assert str(error.value).startswith(message)


def test_invalid_record_duration() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False)
    for seconds in (-0.001, float("inf"), float("nan")):
        with pytest.raises(inferwatch.InputError, match="invalid duration .* passed to record()"):
            monitor.record(seconds)
    assert monitor.snapshot()["inference_count"] == 0


def test_invalid_snapshot_span() -> None:
    with pytest.raises(inferwatch.ConfigError, match='invalid seconds "0" in snapshot()'):
        inferwatch.Monitor(proc_cpu=False).snapshot(0)


def model_with_operator(op_type: str) -> bytes:
    """Encode an ONNX model with one node `custom` of type `op_type` from float32[1] to
    float32[1], written field by field after onnx.proto."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                return bytes(out)

    def field(number: int, payload: bytes | int) -> bytes:
        if isinstance(payload, int):
            return varint(number << 3) + varint(payload)
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    def value_info(name: str) -> bytes:
        dim = field(1, field(1, 1))  # Dimension.dim_value = 1
        tensor_type = field(1, 1) + field(2, dim)  # elem_type FLOAT, shape [1]
        return field(1, name.encode()) + field(2, field(1, tensor_type))

    node = field(1, b"in") + field(2, b"out") + field(3, b"custom") + field(4, op_type.encode())
    graph = field(1, node) + field(2, b"graph") + field(11, value_info("in"))
    graph += field(12, value_info("out"))
    opset = field(1, b"") + field(2, 13)
    return field(1, 8) + field(7, graph) + field(8, opset)
