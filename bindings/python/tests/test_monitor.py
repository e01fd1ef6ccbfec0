"""Monitor: measure(), time(), record() and snapshot() count exactly what they are given."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

import inferwatch

SNAPSHOT_FIELDS = [
    "timestamp_ms",
    "window_seconds",
    "inference_count",
    "failed_inferences",
    "dropped_records",
    "avg_inference_time",
    "p50_inference_time",
    "p90_inference_time",
    "p99_inference_time",
    "min_inference_time",
    "max_inference_time",
    "cpu_load_per_inference",
    "gpu_load_per_inference",
    "foreign_cpu_load",
    "foreign_gpu_load",
]


def quiet_monitor(**options: object) -> inferwatch.Monitor:
    """A monitor without the /proc source, so that load fields stay None."""
    return inferwatch.Monitor(proc_cpu=False, **options)  # type: ignore[arg-type]


def test_empty_snapshot_has_no_values() -> None:
    snapshot = quiet_monitor().snapshot()
    assert list(snapshot) == SNAPSHOT_FIELDS
    assert snapshot["inference_count"] == 0
    assert snapshot["failed_inferences"] == 0
    assert snapshot["dropped_records"] == 0
    assert snapshot["window_seconds"] == 300.0
    for field in SNAPSHOT_FIELDS[5:]:
        assert snapshot[field] is None, field
    assert abs(snapshot["timestamp_ms"] - time.time() * 1000) < 60_000


def test_record_sets_exact_mean_min_max() -> None:
    monitor = quiet_monitor()
    for seconds in (0.001, 0.002, 0.003):
        monitor.record(seconds)
    snapshot = monitor.snapshot()
    assert snapshot["inference_count"] == 3
    assert snapshot["avg_inference_time"] == pytest.approx(2.0, abs=1e-9)
    assert snapshot["min_inference_time"] == pytest.approx(1.0, abs=1e-9)
    assert snapshot["max_inference_time"] == pytest.approx(3.0, abs=1e-9)
    # Percentiles come from a histogram with under 1 % relative error.
    assert snapshot["p50_inference_time"] == pytest.approx(2.0, rel=0.01)
    assert snapshot["p99_inference_time"] == pytest.approx(3.0, rel=0.01)
    assert isinstance(snapshot["inference_count"], int)
    assert isinstance(snapshot["avg_inference_time"], float)


def test_record_failure_counts_separately() -> None:
    monitor = quiet_monitor()
    monitor.record(0.004)
    monitor.record_failure()
    monitor.record_failure()
    snapshot = monitor.snapshot()
    assert snapshot["inference_count"] == 1
    assert snapshot["failed_inferences"] == 2
    assert snapshot["avg_inference_time"] == pytest.approx(4.0, abs=1e-9)


def test_measure_block_counts_each_exit() -> None:
    monitor = quiet_monitor()
    for _ in range(7):
        with monitor.measure():
            sum(range(1000))
    snapshot = monitor.snapshot()
    assert snapshot["inference_count"] == 7
    assert snapshot["failed_inferences"] == 0
    assert snapshot["min_inference_time"] > 0


def test_measure_block_times_the_block() -> None:
    monitor = quiet_monitor()
    with monitor.measure():
        time.sleep(0.02)
    # A sleep lasts at least as long as asked.
    assert monitor.snapshot()["min_inference_time"] >= 20.0


def test_measure_block_that_raises_counts_failure() -> None:
    monitor = quiet_monitor()
    with pytest.raises(KeyError, match="missing"):
        with monitor.measure():
            raise KeyError("missing")
    snapshot = monitor.snapshot()
    assert snapshot["inference_count"] == 0
    assert snapshot["failed_inferences"] == 1


def test_measure_nests() -> None:
    monitor = quiet_monitor()
    measure = monitor.measure()
    with measure:
        with measure:
            pass
    assert monitor.snapshot()["inference_count"] == 2
    with pytest.raises(RuntimeError, match="without a matching __enter__"):
        measure.__exit__(None, None, None)


def test_measure_decorator_counts_calls() -> None:
    monitor = quiet_monitor()

    @monitor.measure()
    def infer(x: int, *, scale: int = 1) -> int:
        """Doubles x."""
        return 2 * x * scale

    assert [infer(i, scale=3) for i in range(5)] == [0, 6, 12, 18, 24]
    assert infer.__name__ == "infer"
    assert infer.__doc__ == "Doubles x."
    assert infer.__wrapped__(2) == 4
    snapshot = monitor.snapshot()
    assert snapshot["inference_count"] == 5


def test_measure_decorator_counts_failures() -> None:
    monitor = quiet_monitor()

    @monitor.measure()
    def broken() -> None:
        raise ValueError("bad frame")

    for _ in range(3):
        with pytest.raises(ValueError, match="bad frame"):
            broken()
    assert monitor.snapshot()["failed_inferences"] == 3
    assert monitor.snapshot()["inference_count"] == 0


def test_measure_decorator_binds_methods() -> None:
    monitor = quiet_monitor()

    class Model:
        def __init__(self, bias: int) -> None:
            self.bias = bias

        @monitor.measure()
        def predict(self, x: int) -> int:
            return x + self.bias

    model = Model(10)
    assert model.predict(5) == 15
    assert Model.predict(model, 1) == 11
    assert monitor.snapshot()["inference_count"] == 2


def test_measure_rejects_non_callable() -> None:
    with pytest.raises(inferwatch.InputError, match="decorates functions, not a int object"):
        quiet_monitor().measure()(42)  # type: ignore[arg-type]


def test_time_returns_result_and_counts() -> None:
    monitor = quiet_monitor()
    assert monitor.time(divmod, 17, 5) == (3, 2)
    assert monitor.time(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]
    with pytest.raises(ZeroDivisionError):
        monitor.time(divmod, 1, 0)
    snapshot = monitor.snapshot()
    assert snapshot["inference_count"] == 2
    assert snapshot["failed_inferences"] == 1


def test_short_window_rounds_to_slots() -> None:
    monitor = quiet_monitor(window=1.0)
    assert monitor.window == 1.0
    monitor.record(0.001)
    assert monitor.snapshot()["window_seconds"] == 1.0
    assert monitor.snapshot(seconds=0.5)["inference_count"] == 1


def test_load_file_is_attributed_to_inferences(tmp_path: Path) -> None:
    gpu_file = tmp_path / "gpu_load_fb"
    gpu_file.write_text("42.5\n")
    monitor = quiet_monitor(load_files={"gpu_load_per_inference": gpu_file}, sample_period=0.02)
    assert monitor.load_files == {"gpu_load_per_inference": gpu_file}
    wait_until_sampled(monitor, "gpu_load_per_inference")
    snapshot = monitor.snapshot()
    assert snapshot["gpu_load_per_inference"] == pytest.approx(42.5, abs=1e-9)
    assert snapshot["cpu_load_per_inference"] is None
    assert snapshot["foreign_gpu_load"] is None


def test_proc_cpu_load_is_a_percentage() -> None:
    monitor = inferwatch.Monitor(sample_period=0.02)
    wait_until_sampled(monitor, "cpu_load_per_inference")
    snapshot = monitor.snapshot()
    assert 0.0 <= snapshot["cpu_load_per_inference"] <= 100.0
    assert 0.0 <= snapshot["foreign_cpu_load"] <= 100.0


def test_shutdown_keeps_recording() -> None:
    monitor = quiet_monitor()
    monitor.shutdown()
    monitor.shutdown()
    monitor.record(0.001)
    assert monitor.snapshot()["inference_count"] == 1


def wait_until_sampled(monitor: inferwatch.Monitor, field: str) -> None:
    """Record an inference every few milliseconds until one carries a value for `field`.

    The sampler thread reads the load sources on its own schedule (a rate source such as
    /proc needs two reads); the loop gives up after 10 s so that a broken source fails the
    test instead of hanging it."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        monitor.record(0.001)
        value = monitor.snapshot(seconds=0.1)[field]
        if value is not None and not math.isnan(value):
            return
        time.sleep(0.01)
    pytest.fail(f"{field} stayed None for 10 s")
