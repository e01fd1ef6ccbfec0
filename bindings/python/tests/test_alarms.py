"""Monitor(profile=...): alarm callbacks, active alarms, the snapshot's alarm fields and
profile errors, on the simulated GPU of the feedback files."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any

import pytest

import inferwatch
from model_cases import CLS_MODEL, load_input

# Long enough for several 0.2 s datapoints on a loaded machine, short enough to fail fast.
WAIT_SECONDS = 20.0

BEHAVIORS = {"avg_inference_time_behavior", "gpu_load_per_inference_behavior"}

ALARM_FIELDS = [
    "time_ms",
    "kind",
    "behavior",
    "metric",
    "state",
    "operator",
    "value",
    "threshold",
    "detail",
]


def write_feedback(folder: Path, gpu_load: float, inference_ms: float) -> None:
    """Write the two files that `inferwatch simulate feedback` writes."""
    (folder / "gpu_load_fb").write_text(f"{gpu_load}\n")
    (folder / "gpu_inference_fb").write_text(f"{inference_ms}\n")


def mining_monitor(folder: Path) -> inferwatch.Monitor:
    return inferwatch.Monitor(
        window=30.0,
        proc_cpu=False,
        sample_period=0.05,
        profile="crypto-mining",
        feedback_dir=folder,
        eval_period=0.2,
    )


def wait_for_alarms(
    monitor: inferwatch.Monitor, events: queue.Queue[dict[str, Any]], behaviors: set[str]
) -> dict[str, dict[str, Any]]:
    """Run the model until each of `behaviors` has an in-alarm event, or time runs out.

    The GPU load per inference of a period needs inferences in that period, so they keep
    coming while the detector evaluates. Returns the first in-alarm event of each behavior.
    """
    session = inferwatch.Session(CLS_MODEL, monitor=monitor)
    x = load_input("ppocr-cls/x.npy")
    raised: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + WAIT_SECONDS
    while not behaviors <= raised.keys() and time.monotonic() < deadline:
        session.run({"x": x})
        try:
            event = events.get(timeout=0.01)
        except queue.Empty:
            continue
        if event["state"] == "in-alarm":
            raised.setdefault(event["behavior"], event)
    return raised


def test_callback_receives_feedback_alarms(tmp_path: Path) -> None:
    write_feedback(tmp_path, gpu_load=85, inference_ms=180)
    monitor = mining_monitor(tmp_path)
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    monitor.on_alarm(events.put)
    raised = wait_for_alarms(monitor, events, BEHAVIORS)
    monitor.shutdown()

    assert set(raised) == BEHAVIORS

    time_event = raised["avg_inference_time_behavior"]
    assert list(time_event) == ALARM_FIELDS
    assert time_event["kind"] == "behavior"
    assert time_event["metric"] == "avg_inference_time"
    assert time_event["operator"] == "less-than"
    assert time_event["value"] == pytest.approx(180.0)
    assert time_event["threshold"] == pytest.approx(100.0)
    assert abs(time_event["time_ms"] - time.time() * 1000) < 60_000
    gpu_event = raised["gpu_load_per_inference_behavior"]
    assert gpu_event["metric"] == "gpu_load_per_inference"
    assert gpu_event["operator"] == "less-than"
    assert gpu_event["value"] == pytest.approx(85.0)
    assert gpu_event["threshold"] == pytest.approx(40.0)
    assert gpu_event["detail"] == "gpu_load_per_inference = 85.000 where normal is less-than 40.000"


def test_alarms_lists_active(tmp_path: Path) -> None:
    write_feedback(tmp_path, gpu_load=85, inference_ms=180)
    monitor = mining_monitor(tmp_path)
    assert monitor.alarms() == []
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    monitor.on_alarm(events.put)
    wait_for_alarms(monitor, events, BEHAVIORS)

    active = {event["behavior"]: event for event in monitor.alarms()}
    assert set(active) == BEHAVIORS
    assert active["avg_inference_time_behavior"]["state"] == "in-alarm"
    assert active["avg_inference_time_behavior"]["value"] == pytest.approx(180.0)
    assert active["gpu_load_per_inference_behavior"]["value"] == pytest.approx(85.0)
    snapshot = monitor.snapshot()
    assert list(snapshot)[-2:] == ["alarms", "active_alarms"]
    assert sorted(snapshot["active_alarms"]) == sorted(BEHAVIORS)
    # The raising events were not returned by an earlier snapshot, so this one carries them.
    raising = {e["behavior"] for e in snapshot["alarms"] if e["state"] == "in-alarm"}
    assert raising == BEHAVIORS
    monitor.shutdown()


def test_alarm_clears_on_normal_feedback(tmp_path: Path) -> None:
    write_feedback(tmp_path, gpu_load=85, inference_ms=180)
    monitor = mining_monitor(tmp_path)
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    monitor.on_alarm(events.put)
    assert "avg_inference_time_behavior" in wait_for_alarms(
        monitor, events, {"avg_inference_time_behavior"}
    )

    write_feedback(tmp_path, gpu_load=10, inference_ms=20)
    deadline = time.monotonic() + WAIT_SECONDS
    cleared = None
    while cleared is None and time.monotonic() < deadline:
        try:
            event = events.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        if event["behavior"] == "avg_inference_time_behavior" and event["state"] == "alarm-cleared":
            cleared = event
    monitor.shutdown()
    assert cleared is not None
    # The profile averages its datapoints over durationSeconds (300 s), so the value that
    # clears is the mean of the 180 ms datapoints and the 20 ms ones since.
    assert 20.0 < cleared["value"] < 100.0
    assert cleared["threshold"] == pytest.approx(100.0)
    assert all(event["behavior"] != "avg_inference_time_behavior" for event in monitor.alarms())


def test_raising_callback_keeps_delivery(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_feedback(tmp_path, gpu_load=85, inference_ms=180)
    monitor = mining_monitor(tmp_path)
    calls: list[str] = []

    def failing(event: dict[str, Any]) -> None:
        calls.append(event["behavior"])
        raise RuntimeError(f"callback failed on {event['behavior']}")

    events: queue.Queue[dict[str, Any]] = queue.Queue()
    monitor.on_alarm(failing)
    monitor.on_alarm(events.put)
    raised = wait_for_alarms(monitor, events, {"avg_inference_time_behavior"})
    monitor.shutdown()

    # The second callback still got the event that the first one failed on.
    assert "avg_inference_time_behavior" in raised
    assert "avg_inference_time_behavior" in calls
    err = capfd.readouterr().err
    assert "RuntimeError: callback failed on avg_inference_time_behavior" in err


def test_bad_profile_file_names_json_path(tmp_path: Path) -> None:
    behaviors = [
        {
            "name": "slow",
            "metric": "avg_inference_time",
            "criteria": {"comparisonOperator": "less-than", "value": {"number": "fast"}},
        }
    ]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(behaviors))
    with pytest.raises(inferwatch.ConfigError) as error:
        inferwatch.Monitor(profile=path)
    message = str(error.value)
    assert message.startswith(f"profile= in Monitor(): invalid profile {path}: ")
    assert "$[0].criteria.value.number" in message


def test_profile_not_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("[{")
    with pytest.raises(inferwatch.ConfigError, match=r"\$: not valid JSON at line 1"):
        inferwatch.Monitor(profile=str(path))


def test_missing_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    with pytest.raises(inferwatch.ConfigError, match="failed to read profile .*missing.json"):
        inferwatch.Monitor(profile=path)


def test_bad_eval_period() -> None:
    with pytest.raises(inferwatch.ConfigError, match='invalid eval_period "0" in Monitor()'):
        inferwatch.Monitor(profile="crypto-mining", eval_period=0)


def test_without_detector() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False)
    assert monitor.alarms() == []
    assert "alarms" not in monitor.snapshot()
    with pytest.raises(inferwatch.ConfigError, match="pass profile= or drift=True"):
        monitor.on_alarm(print)


def test_on_alarm_rejects_non_callable() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False, profile="crypto-mining")
    expected = r"invalid callback in on_alarm\(\): expected a callable, got int"
    with pytest.raises(inferwatch.InputError, match=expected):
        monitor.on_alarm(42)  # type: ignore[arg-type]
    monitor.shutdown()


def test_drift_adds_snapshot_fields() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False, drift=True)
    snapshot = monitor.snapshot()
    assert snapshot["alarms"] == []
    assert snapshot["active_alarms"] == []
    assert monitor.alarms() == []
    monitor.shutdown()
