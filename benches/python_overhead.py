"""Measure what inferwatch's Python package adds to an inference.

Runs the PP-OCR text-direction classifier (models/ppocr-cls, input 1x3x48x192 float32)
through a bare ``onnxruntime.InferenceSession.run`` and through ``inferwatch.instrument``,
alternating the two so that both see the same machine load, and times the Monitor's
recording calls on an empty function. Every figure is the median over REPEATS timeit
repeats of the per-call mean of one repeat. Prints a Markdown table.

Usage: .venv/bin/python benches/python_overhead.py [--repeats N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime

import inferwatch

MODELS = Path(__file__).resolve().parents[1] / "models"


def per_call_medians(
    timers: dict[str, Callable[[], Any]], number: int, repeats: int
) -> dict[str, float]:
    """Time each callable `number` times per repeat, the callables taking turns in every
    repeat, and return the median seconds per call of each."""
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(repeats):
        for name, call in timers.items():
            samples[name].append(timeit.timeit(call, number=number) / number)
    return {name: statistics.median(values) for name, values in samples.items()}


def noop() -> None:
    pass


class NoopSession:
    """A session with the signature of ``InferenceSession.run`` that does nothing, to
    isolate what ``instrument()`` adds to each call."""

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> list[Any]:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31, help="timeit repeats per figure")
    args = parser.parse_args()

    x = np.load(MODELS / "ppocr-cls" / "x.npy")
    model = str(MODELS / "ppocr-cls" / "model.onnx")
    options = onnxruntime.SessionOptions()
    # One intra-op thread: on a 2-core machine, two threads ran this model in 1.98 ms
    # against 1.09 ms for one (median of 30 runs, onnxruntime 1.31.1).
    options.intra_op_num_threads = 1
    bare = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    monitor = inferwatch.Monitor()
    instrumented = inferwatch.instrument(
        onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"]),
        monitor,
    )
    tract = inferwatch.Session(model, monitor=monitor)
    tract_fixed = inferwatch.Session(model, monitor=monitor, input_shapes={"x": list(x.shape)})
    feed = {"x": x}
    for _ in range(50):
        bare.run(None, feed)
        instrumented.run(None, feed)

    inference = per_call_medians(
        {
            "bare": lambda: bare.run(None, feed),
            "instrumented": lambda: instrumented.run(None, feed),
        },
        number=200,
        repeats=args.repeats,
    )
    sessions = per_call_medians(
        {
            "tract": lambda: tract.run(feed),
            "tract_fixed": lambda: tract_fixed.run(feed),
        },
        number=50,
        repeats=max(5, args.repeats // 3),
    )

    measure = monitor.measure()

    @monitor.measure()
    def decorated() -> None:
        pass

    def with_measure() -> None:
        with monitor.measure():
            pass

    def with_reused_measure() -> None:
        with measure:
            pass

    noop_session = NoopSession()
    instrumented_noop = inferwatch.instrument(NoopSession(), monitor)
    micro = per_call_medians(
        {
            "noop()": noop,
            "NoopSession().run(None, feed)": lambda: noop_session.run(None, feed),
            "instrument(NoopSession()).run(None, feed)": lambda: instrumented_noop.run(None, feed),
            "monitor.time(noop)": lambda: monitor.time(noop),
            "decorated noop (@monitor.measure())": decorated,
            "with monitor.measure(): pass": with_measure,
            "with m: pass (m = monitor.measure() made once)": with_reused_measure,
            "monitor.record(0.001)": lambda: monitor.record(0.001),
            "x.copy() (the input copy Session.run makes)": lambda: x.copy(),
        },
        number=20_000,
        repeats=args.repeats,
    )

    us = 1e6
    print(f"python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
          f"inferwatch {inferwatch.__version__}, numpy {np.__version__}, "
          f"{platform.machine()}, repeats {args.repeats}")
    print()
    print("| what | median per call |")
    print("|---|---|")
    print(f"| onnxruntime `run`, bare | {inference['bare'] * us:.1f} µs |")
    print(f"| onnxruntime `run` through `instrument()` | {inference['instrumented'] * us:.1f} µs |")
    print(f"| difference | {(inference['instrumented'] - inference['bare']) * us:+.1f} µs |")
    print(f"| `inferwatch.Session.run`, tract, loaded at the first run | "
          f"{sessions['tract'] * us:.1f} µs |")
    print(f"| `inferwatch.Session.run`, tract, `input_shapes` given | "
          f"{sessions['tract_fixed'] * us:.1f} µs |")
    for name, seconds in micro.items():
        if name.startswith("instrument("):
            base, base_name = micro["NoopSession().run(None, feed)"], "the bare no-op run"
        elif name.startswith(("monitor.time", "decorated", "with ")):
            base, base_name = micro["noop()"], "`noop()`"
        else:
            print(f"| `{name}` | {seconds * 1e9:.0f} ns |")
            continue
        print(f"| `{name}` | {seconds * 1e9:.0f} ns ({(seconds - base) * 1e9:+.0f} ns over "
              f"{base_name}) |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
