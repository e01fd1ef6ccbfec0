"""Type stubs and user documentation of the native module behind ``inferwatch``."""

import os
import pathlib
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Generic, Optional, TypeVar, Union, final

import numpy.typing as npt
from typing_extensions import Self

__all__ = [
    "ConfigError",
    "ExportError",
    "InferwatchError",
    "InputError",
    "Measure",
    "MeasuredFunction",
    "ModelError",
    "Monitor",
    "Session",
    "TensorInfo",
    "__version__",
]

__version__: str

_R = TypeVar("_R")

class InferwatchError(Exception):
    """Base class of every error inferwatch raises.

    Raised as such when a backend fails while it runs an inference; the message carries
    the backend's error.
    """

class ModelError(InferwatchError):
    """The model file cannot be read, decoded or loaded by the backend.

    The message names the file and what failed, for example ``failed to read model
    missing.onnx: No such file or directory (os error 2)``, or the operator a backend does
    not support with the hint to try ``backend="ort"``.
    """

class InputError(InferwatchError, ValueError):
    """An input tensor or argument has the wrong name, type, shape or value.

    Raised by ``Session.run`` before the model runs: an input name the model does not
    have, a missing input, a dtype or shape the model does not accept, or a value that is
    not a numpy array. Also a ``ValueError``.
    """

class ConfigError(InferwatchError, ValueError):
    """An option is invalid, or a backend or its runtime library is not available.

    The message names the option, the value and the expected form, for example ``invalid
    window "-1" in Monitor(): expected a positive number of seconds``. Also a
    ``ValueError``.
    """

class ExportError(InferwatchError):
    """An exporter failed to send metrics, such as ``Monitor.flush()`` to a collector
    that is not reachable."""

@final
class TensorInfo:
    """The name, element type and shape a model declares for an input or output."""

    @property
    def name(self) -> str:
        """The name in the model."""

    @property
    def dtype(self) -> str:
        """The numpy name of the element type: ``float32``, ``float64``, ``int64``,
        ``int32``, ``uint8`` or ``bool``."""

    @property
    def shape(self) -> Optional[tuple[Optional[int], ...]]:
        """The declared shape, with ``None`` for a free dimension (batch, length);
        ``None`` when even the rank is unknown."""

    def __eq__(self, other: object, /) -> bool: ...

@final
class Monitor:
    """A rolling window of inference times with the CPU and GPU load each inference saw.

    The window is a ring of time slots: 300 s of 5 s slots by default, and slots of
    ``window / 12`` (at least 0.1 s) for windows under a minute. Recording an inference
    takes no lock and allocates nothing. Creating a monitor starts one background thread
    (``inferwatch-sampler``) that reads the load sources every ``sample_period`` seconds:
    system and foreign CPU from ``/proc`` (unless ``proc_cpu=False``) and one number per
    file in ``load_files``. The thread stops when the monitor is garbage collected or
    ``shutdown()`` is called.

    A monitor is safe to share between threads; sessions, ``measure()``, ``time()`` and
    ``record()`` from any thread record into the same window.

    Args:
        window: the span of the window in seconds, rounded up to whole slots.
        load_files: load metrics read from files, as ``{metric: path}``. The metric is
            ``gpu_load_per_inference``, ``cpu_load_per_inference``, ``foreign_gpu_load`` or
            ``foreign_cpu_load`` (or ``gpu``, ``cpu``, ``foreign_gpu``, ``foreign_cpu``).
            Each file contains one decimal number in percent, such as ``42.5``. While a
            file is missing or does not contain a number, its metric is ``None`` in
            snapshots.
        sample_period: seconds between two reads of the load sources.
        proc_cpu: read system and foreign CPU load from ``/proc``.
        otlp_endpoint: export the window's metrics to this OpenTelemetry collector, such
            as ``http://127.0.0.1:4318`` (``/v1/metrics`` is appended to an HTTP URL
            without a path). Without it, metrics are exported only when the
            ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``
            variable is set. The other ``OTEL_*`` variables (headers, resource
            attributes) apply too.
        otlp_protocol: ``"http/protobuf"`` (the default) or ``"grpc"``.
        export_interval: seconds between two exports; 60 by default.
        service_name: the ``service.name`` resource attribute.
        profile: evaluate a security profile on the window: ``"crypto-mining"`` (the
            shipped profile: GPU load per inference under 40 %, average inference time
            under 100 ms) or the path of a behaviors JSON file in the format of
            ``aws iot create-security-profile --behaviors``.
        drift: run the latency drift detector, which learns a baseline of the p90
            latency over its first 30 s and raises ``latency-drift`` when the latency
            stays above it. Afterwards the baseline is the median of the last 300 s of
            calm latency, so it follows slow changes of the device.
        feedback_dir: read a simulated GPU from this folder, as
            ``inferwatch run --feedback-dir`` does: the number in ``gpu_load_fb`` is
            the GPU load in percent, and the number in ``gpu_inference_fb`` (in
            milliseconds) replaces the ``avg_inference_time`` that the profile evaluates.
            ``inferwatch simulate feedback`` writes both files.
        eval_period: seconds between two datapoints of the profile. With a profile or
            ``drift``, window slots are no longer than this period (nor than 1 s with
            ``drift``), and at least 0.1 s.
        indicators: also look through ``/proc`` for mining indicators (pool
            connections, miner names and command lines, foreign processes that keep a
            core busy) once per ``eval_period``. Needs ``profile`` or ``drift``, whose
            detector thread runs the scan.
        busy_cpu: CPU use, in percent of one core, at or above which another process
            counts as busy; 80 by default. A multi-threaded process can exceed 100, up
            to 100 times the number of online cores, the largest value accepted.
            Needs ``indicators=True``, like ``busy_secs`` and ``ignore_processes``.
        busy_secs: the span, in seconds, over which a process's average CPU use must
            reach ``busy_cpu`` to raise the ``busy-process`` alarm; 20 by default.
        ignore_processes: names of processes never reported as busy, such as
            ``["cc1plus", "rustc"]``. A name matches the kernel's process name (``comm``,
            which keeps the first 15 bytes) or the file name of ``argv[0]``, case
            sensitively. These processes still raise the other indicators (pool
            connections, miner names, miner command lines), because a miner can take any
            name.

    With ``profile`` or ``drift``, a background thread (``inferwatch-detector``)
    evaluates the window and reports alarms through ``alarms()``, ``on_alarm()`` and the
    ``alarms`` field of ``snapshot()``.

    The exporter sends from its own thread and never blocks recording: an unreachable
    collector makes exports fail, counted in ``export_counts()``. The monitor exports once
    more when it is garbage collected.

    Raises:
        ConfigError: a window, period or interval that is not a positive number of
            seconds, an unknown metric name or protocol, an invalid endpoint, a
            profile that cannot be read or is invalid (the message names the JSON path of
            every problem, such as ``$[0].criteria.value.number``), ``indicators=True``
            without ``profile`` or ``drift``, ``busy_cpu``, ``busy_secs`` or
            ``ignore_processes`` without ``indicators=True``, a ``busy_cpu`` or
            ``busy_secs`` that is not a positive number, or a process name that is empty
            or contains ``/``.
    """

    def __new__(
        cls,
        window: float = 300.0,
        *,
        load_files: Optional[dict[str, Union[str, os.PathLike[str]]]] = None,
        sample_period: float = 0.5,
        proc_cpu: bool = True,
        otlp_endpoint: Optional[str] = None,
        otlp_protocol: Optional[str] = None,
        export_interval: Optional[float] = None,
        service_name: Optional[str] = None,
        profile: Optional[Union[str, os.PathLike[str]]] = None,
        drift: bool = False,
        feedback_dir: Optional[Union[str, os.PathLike[str]]] = None,
        eval_period: float = 5.0,
        indicators: bool = False,
        busy_cpu: Optional[float] = None,
        busy_secs: Optional[float] = None,
        ignore_processes: Optional[Sequence[str]] = None,
    ) -> Self: ...
    @property
    def window(self) -> float:
        """The span of the window in seconds, rounded up to whole slots."""

    @property
    def load_files(self) -> dict[str, pathlib.Path]:
        """The load files by full metric name."""

    @property
    def otlp_endpoint(self) -> Optional[str]:
        """The URL metrics are exported to, or ``None`` without an exporter."""

    def flush(self) -> None:
        """Export the metrics now and wait until the collector answered.

        Raises:
            ExportError: the export failed, for example because the collector is not
                reachable.
            ConfigError: the monitor has no exporter.
        """

    def export_counts(self) -> dict[str, int]:
        """Return the number of exports that succeeded (``exported``) and failed
        (``failed``) so far; both are 0 without an exporter."""

    def measure(self) -> Measure:
        """Return a context manager and decorator that times inference code.

        As a context manager, ``with monitor.measure(): ...`` records the time the block
        took, or a failed inference when the block raises. As a decorator,
        ``@monitor.measure()`` records every call of the function in the same way. Use it
        for models that are not run by ``Session``: PyTorch, TensorFlow, a whole request.
        """

    def time(self, func: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
        """Call ``func(*args, **kwargs)``, record how long it took and return its result.

        When ``func`` raises, a failed inference is recorded and the exception
        propagates. This is the cheapest way to time one call from Python.
        """

    def record(self, seconds: float) -> None:
        """Record an inference that took ``seconds`` and ended now.

        Raises:
            InputError: ``seconds`` is negative, not finite, or above 1e9.
        """

    def record_failure(self) -> None:
        """Record a failed inference that ended now."""

    def snapshot(self, seconds: Optional[float] = None) -> dict[str, Any]:
        """Return the statistics of the window, or of its trailing ``seconds``.

        The dict has the fields of ``inferwatch run --json``: ``timestamp_ms``,
        ``window_seconds``, ``inference_count``, ``failed_inferences``,
        ``dropped_records`` (ints, except ``window_seconds``), and the floats
        ``avg_inference_time``, ``p50_inference_time``, ``p90_inference_time``,
        ``p99_inference_time``, ``min_inference_time``, ``max_inference_time`` in
        milliseconds and ``cpu_load_per_inference``, ``gpu_load_per_inference``,
        ``foreign_cpu_load``, ``foreign_gpu_load`` in percent. A value with no data
        (no inference in the window, no load source) is ``None``, never 0.
        Percentiles are within 1 % of the exact values.

        With ``profile`` or ``drift``, two more fields follow, as in
        ``inferwatch run --json``: ``alarms``, the alarm events since the previous
        ``snapshot()`` (dicts as ``on_alarm()`` receives them), and ``active_alarms``, the
        names of the behaviors in alarm now.

        Raises:
            ConfigError: ``seconds`` is not a positive number.
        """

    def alarms(self) -> list[dict[str, Any]]:
        """Return the alarms raised now, each as the event that raised it.

        The list is empty without ``profile`` or ``drift``, and while nothing is in
        alarm. Each dict is an event as ``on_alarm()`` describes it, with ``state``
        ``"in-alarm"``.
        """

    def on_alarm(self, callback: Callable[[dict[str, Any]], object], /) -> None:
        """Call ``callback(event)`` for every alarm event from now on.

        ``event`` is a dict with the fields of the events in ``inferwatch run --json``,
        in this order:

        - ``time_ms``: the time of the evaluation (int, milliseconds since the Unix epoch).
        - ``kind``: ``"behavior"``, ``"drift"`` or ``"indicator"``.
        - ``behavior``: the behavior name, ``"latency-drift"`` or the indicator name.
        - ``metric``: the metric evaluated, such as ``"avg_inference_time"``.
        - ``state``: ``"in-alarm"``, ``"alarm-cleared"`` or ``"alarm-invalidated"``.
        - ``operator``: the comparison that is true for normal datapoints, such as
          ``"less-than"``.
        - ``value``: the value observed, after aggregation over the behavior's
          ``durationSeconds`` (the mean of its datapoints for a number threshold), or
          ``None`` for an invalidated alarm.
        - ``threshold``: the value compared with.
        - ``detail``: a readable account, such as
          ``"avg_inference_time = 180.000 where normal is less-than 100.000"``.

        The callback runs on the detector thread with the GIL held, so it should return
        quickly. An exception it raises is printed to ``sys.stderr`` with its traceback;
        the detector goes on and later events are still delivered. A callback may call
        ``alarms()`` and ``snapshot()``, but not ``on_alarm()`` or ``shutdown()``, which
        wait for the delivery that runs the callback.

        Raises:
            ConfigError: the monitor has neither ``profile`` nor ``drift``.
            InputError: ``callback`` is not callable.
        """

    def shutdown(self) -> None:
        """Stop the sampler thread and the detector thread, and wait for them.

        Recording still works afterwards, with the last load values frozen.
        """

@final
class Measure:
    """Times a block (``with``) or every call of a function (decorator).

    Made by ``Monitor.measure()``. One ``Measure`` may be entered again inside its own
    block; each ``with`` records the time since its own ``__enter__``. Threads should
    each use their own ``Measure`` (call ``measure()`` in each thread), because the open
    blocks of one ``Measure`` form a single stack.
    """

    def __enter__(self) -> Measure: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool: ...
    def __call__(self, func: Callable[..., _R], /) -> MeasuredFunction[_R]:
        """Return ``func`` wrapped so that every call is timed.

        The wrapper keeps the function's name and docstring (``functools.wraps``) and
        binds as a method when it decorates one. Coroutine functions are timed until
        they return their coroutine, not until it completes.

        Raises:
            InputError: ``func`` is not callable.
        """

@final
class MeasuredFunction(Generic[_R]):
    """A function decorated with ``Monitor.measure()``; calling it records its time."""

    __wrapped__: Callable[..., _R]

    def __call__(self, *args: Any, **kwargs: Any) -> _R: ...
    def __get__(self, instance: object, owner: Optional[type] = None, /) -> Any: ...

@final
class Session:
    """An ONNX model loaded by a backend, timed on every run.

    ``run`` checks the inputs against the model, reads the clock, runs the model with the
    GIL released, reads the clock again and records the time in the monitor, with the
    latest load sample. Input checks are not timed; a run that fails in the checks or in
    the backend is counted in ``failed_inferences``. Sessions are safe to share between
    threads: the tract backend shares one optimized plan, and runs on different threads
    proceed in parallel.

    Args:
        path: the ``.onnx`` file.
        backend: ``"tract"`` (pure Rust, needs nothing installed) or ``"ort"`` (ONNX
            Runtime, loaded from ``libonnxruntime`` at run time; ``ORT_DYLIB_PATH`` or the
            ``onnxruntime`` Python package provides it).
        monitor: the monitor to record into; without it, the session creates its own
            ``Monitor()``, available as ``session.monitor``.
        input_shapes: concrete shapes for inputs with free dimensions, as
            ``{name: shape}``. tract optimizes the model for these shapes when the session
            is made and then accepts only them. Without them, a model with free dimensions
            is loaded by the first ``run`` (see ``loaded``). ONNX Runtime ignores them.

    Raises:
        ModelError: the file cannot be read, is not an ONNX model, or the backend cannot
            load it.
        ConfigError: an unknown backend name, or a backend whose runtime library is
            missing.
        InputError: ``input_shapes`` that the model does not accept.
    """

    def __new__(
        cls,
        path: Union[str, os.PathLike[str]],
        backend: str = "tract",
        monitor: Optional[Monitor] = None,
        *,
        input_shapes: Optional[dict[str, list[int]]] = None,
    ) -> Self: ...
    def run(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Run one inference and return the outputs by name, in model order.

        Each input array is copied once into C order (the backend takes ownership of its
        inputs); outputs are handed to numpy without a copy.

        Raises:
            InputError: a missing or unknown input name, a dtype or shape the model does
                not accept, or a value that is not a numpy array. Such a run counts as a
                failed inference.
            InferwatchError: the backend failed while it ran the model.
        """

    @property
    def inputs(self) -> list[TensorInfo]:
        """The model's inputs, in declaration order."""

    @property
    def outputs(self) -> list[TensorInfo]:
        """The model's outputs, in the order ``run`` returns them."""

    @property
    def loaded(self) -> bool:
        """Whether the model is loaded.

        A tract model whose inputs have free dimensions that ``input_shapes`` does not fix
        is loaded by the first ``run``, for the shapes of its inputs, because tract
        optimizes a model for concrete shapes only. Until then ``outputs`` is empty and
        ``inputs`` shows the declared shapes; afterwards the session accepts only those
        shapes (another shape raises ``InputError``).
        """

    @property
    def backend(self) -> str:
        """The backend name: ``"tract"`` or ``"ort"``."""

    @property
    def path(self) -> pathlib.Path:
        """The model file."""

    @property
    def monitor(self) -> Monitor:
        """The monitor each run records into."""

