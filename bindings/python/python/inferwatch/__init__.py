"""Instrument ONNX inference and detect when something else on the device takes its CPU or GPU.

``Session`` runs an ONNX model on numpy arrays and times every run. ``Monitor`` keeps the
rolling window of those times with the CPU and GPU load seen by each inference. It also
times any other inference code through ``measure()``, ``time()`` or ``record()``, and
exports the window over OTLP. ``instrument()`` times an existing
``onnxruntime.InferenceSession``. ``Monitor.snapshot()`` returns the window statistics
with the same fields as ``inferwatch run --json``. With a security profile or latency
drift detection, the monitor also raises alarms, returned by ``Monitor.alarms()`` and
passed to the callbacks of ``Monitor.on_alarm()``.

The classes are implemented in Rust (``inferwatch._native``); their documentation is in the
type stubs shipped with the package.
"""

from inferwatch._instrument import InstrumentedInferenceSession, instrument
from inferwatch._native import (
    ConfigError,
    ExportError,
    InferwatchError,
    InputError,
    Measure,
    MeasuredFunction,
    ModelError,
    Monitor,
    Session,
    TensorInfo,
    __version__,
)

__all__ = [
    "ConfigError",
    "ExportError",
    "InferwatchError",
    "InputError",
    "InstrumentedInferenceSession",
    "Measure",
    "MeasuredFunction",
    "ModelError",
    "Monitor",
    "Session",
    "TensorInfo",
    "__version__",
    "instrument",
]
