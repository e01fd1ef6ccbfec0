"""Monitor(indicators=True, busy_cpu=..., busy_secs=..., ignore_processes=...): option
checks, and the busy-process alarm on a real busy child process."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import inferwatch

# Longer than 15 bytes, so the kernel keeps "inferwatch-busy" as the process name and
# ignore_processes matches through argv[0].
BUSY_NAME = "inferwatch-busy-loop"

# Busy threshold and span of the end-to-end test. A Python busy loop takes a whole core on
# an idle machine and about half of one when it shares two cores with two other busy
# processes, so 30 % leaves room. The test passed with three other busy loops running.
BUSY_CPU = 30.0
BUSY_SECS = 2.0

# Long enough for the busy span and several scans on a loaded machine, short enough to
# fail fast.
WAIT_SECONDS = 30.0


@pytest.fixture
def busy_child(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start a Python busy loop whose executable file is named BUSY_NAME.

    The kernel takes a process's name (comm) from the file name that exec was given, so a
    symbolic link to the interpreter renames the process without prctl or setproctitle.
    """
    link = tmp_path / BUSY_NAME
    link.symlink_to(os.path.realpath(sys.executable))
    child = subprocess.Popen([str(link), "-c", "while True: pass"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


# The CPU use of all online cores in percent of one core, the largest busy_cpu accepted.
ALL_CORES = 100 * (os.cpu_count() or 1)


def test_busy_cpu_of_all_cores_accepted() -> None:
    monitor = indicator_monitor(busy_cpu=float(ALL_CORES))
    assert monitor.alarms() == []
    monitor.shutdown()


def indicator_monitor(**options: Any) -> inferwatch.Monitor:
    """Return a monitor that scans /proc every 0.2 s.

    Drift is on only because the scan runs on the detector thread that drift starts.
    """
    return inferwatch.Monitor(
        window=30.0,
        proc_cpu=False,
        drift=True,
        eval_period=0.2,
        indicators=True,
        **options,
    )


def busy_events(events: queue.Queue[dict[str, Any]], pid: int) -> list[dict[str, Any]]:
    """Drain `events` and return the busy-process events that name process `pid`."""
    found = []
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return found
        if event["behavior"] == "busy-process" and event["detail"].startswith(f"process {pid} "):
            found.append(event)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"busy_cpu": 0},
            'invalid busy_cpu "0" in Monitor(): expected a positive CPU use in percent',
        ),
        ({"busy_cpu": -5.0}, 'invalid busy_cpu "-5" in Monitor()'),
        ({"busy_cpu": float("nan")}, 'invalid busy_cpu "NaN" in Monitor()'),
        ({"busy_cpu": float("inf")}, 'invalid busy_cpu "inf" in Monitor()'),
        (
            # One percent more than all online cores can give.
            {"busy_cpu": ALL_CORES + 1},
            f'invalid busy_cpu "{ALL_CORES + 1}" in Monitor(): expected at most {ALL_CORES}, '
            f"the CPU use of all {ALL_CORES // 100} online cores",
        ),
        (
            {"busy_secs": 0},
            'invalid busy_secs "0" in Monitor(): expected a positive number of seconds',
        ),
        ({"busy_secs": -1.5}, 'invalid busy_secs "-1.5" in Monitor()'),
        ({"busy_secs": float("inf")}, 'invalid busy_secs "inf" in Monitor()'),
        (
            {"ignore_processes": [""]},
            'invalid ignore_processes[0] "" in Monitor(): expected a process name, not an empty',
        ),
        (
            {"ignore_processes": ["rustc", "/usr/bin/cc1plus"]},
            'invalid ignore_processes[1] "/usr/bin/cc1plus" in Monitor(): expected the '
            "program's file name, not its path",
        ),
        (
            {"ignore_processes": ["rustc", 7]},
            'invalid ignore_processes[1] "7" in Monitor(): expected a process name (str)',
        ),
        (
            {"ignore_processes": "rustc"},
            "invalid ignore_processes \"'rustc'\" in Monitor(): expected a sequence of "
            "process names",
        ),
        (
            {"ignore_processes": 3},
            'invalid ignore_processes "3" in Monitor(): expected a sequence of process names',
        ),
    ],
)
def test_invalid_indicator_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(inferwatch.ConfigError) as error:
        inferwatch.Monitor(proc_cpu=False, drift=True, indicators=True, **options)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    "options",
    [{"busy_cpu": 50.0}, {"busy_secs": 5.0}, {"ignore_processes": ["rustc"]}],
)
def test_indicator_options_need_indicators(options: dict[str, Any]) -> None:
    (name,) = options
    with pytest.raises(inferwatch.ConfigError) as error:
        inferwatch.Monitor(proc_cpu=False, drift=True, **options)
    message = str(error.value)
    assert message.startswith(f"{name}= in Monitor() tunes the mining indicators: ")
    assert "pass indicators=True" in message


def test_missing_indicators_reported_before_value() -> None:
    # The missing indicators=True is reported even when the value itself is invalid.
    with pytest.raises(inferwatch.ConfigError, match="busy_cpu= in Monitor\\(\\) tunes"):
        inferwatch.Monitor(proc_cpu=False, drift=True, busy_cpu=-1.0)


def test_indicators_need_detector() -> None:
    with pytest.raises(inferwatch.ConfigError) as error:
        inferwatch.Monitor(proc_cpu=False, indicators=True, busy_cpu=50.0)
    expected = "indicators=True in Monitor() needs a detector: pass profile= or drift=True"
    assert str(error.value) == expected


def test_valid_indicator_options_start() -> None:
    monitor = indicator_monitor(busy_cpu=150.0, busy_secs=0.5, ignore_processes=("rustc",))
    assert monitor.alarms() == []
    monitor.shutdown()


def test_busy_child_raises_alarm_unless_ignored(busy_child: subprocess.Popen[bytes]) -> None:
    started_ms = time.time() * 1000
    watching = indicator_monitor(busy_cpu=BUSY_CPU, busy_secs=BUSY_SECS)
    # The same scans with the child's name ignored: the comparison is fair only because
    # both monitors watch the child over the same span.
    ignoring = indicator_monitor(
        busy_cpu=BUSY_CPU, busy_secs=BUSY_SECS, ignore_processes=["rustc", BUSY_NAME]
    )
    watched: queue.Queue[dict[str, Any]] = queue.Queue()
    ignored: queue.Queue[dict[str, Any]] = queue.Queue()
    watching.on_alarm(watched.put)
    ignoring.on_alarm(ignored.put)

    raised: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT_SECONDS
    while not raised and time.monotonic() < deadline:
        time.sleep(0.1)
        raised = busy_events(watched, busy_child.pid)
    # A few more scans of the ignoring monitor after the alarm.
    time.sleep(1.0)
    watching.shutdown()
    ignoring.shutdown()

    assert Path(f"/proc/{busy_child.pid}/comm").read_text().strip() == BUSY_NAME[:15]
    assert raised, f"no busy-process alarm for process {busy_child.pid} in {WAIT_SECONDS} s"
    event = raised[0]
    assert event["kind"] == "indicator"
    assert event["state"] == "in-alarm"
    assert event["metric"] == "process_cpu"
    assert event["operator"] == "less-than"
    assert event["threshold"] == pytest.approx(BUSY_CPU)
    assert event["value"] >= BUSY_CPU
    assert event["detail"].startswith(f"process {busy_child.pid} ({BUSY_NAME[:15]}) used ")
    # The first scan starts the measured span, so the alarm waits busy_secs at least.
    assert event["time_ms"] >= started_ms + BUSY_SECS * 1000 - 50
    assert busy_events(ignored, busy_child.pid) == []
