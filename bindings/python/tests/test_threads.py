"""Threads that run sessions and measure code at once: exact counts, GIL released."""

from __future__ import annotations

import threading

import inferwatch
from model_cases import CLS_MODEL, DET_MODEL, load_input


def run_in_threads(count: int, target: object) -> None:
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()  # type: ignore[operator]
        except BaseException as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_measure_from_threads_gives_exact_counts() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False)

    @monitor.measure()
    def step() -> None:
        pass

    def worker() -> None:
        for _ in range(2000):
            with monitor.measure():
                pass
            step()
            monitor.record(0.001)

    run_in_threads(4, worker)
    snapshot = monitor.snapshot()
    assert snapshot["inference_count"] == 4 * 2000 * 3
    assert snapshot["dropped_records"] == 0


def test_sessions_of_two_models_share_one_monitor() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False)
    cls = inferwatch.Session(CLS_MODEL, monitor=monitor)
    det = inferwatch.Session(DET_MODEL, monitor=monitor)
    x_cls = load_input("ppocr-cls/x.npy")
    x_det = load_input("ppocr-det/x.npy")

    def run_cls() -> None:
        for _ in range(20):
            cls.run({"x": x_cls})

    def run_det() -> None:
        det.run({"x": x_det})

    threads = [threading.Thread(target=run_cls), threading.Thread(target=run_det)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert monitor.snapshot()["inference_count"] == 21
    assert cls.monitor is monitor
    assert det.monitor is monitor


def test_run_releases_gil() -> None:
    # While a worker thread is inside run(), this thread counts loop iterations that see
    # the worker's flag set. With the GIL held for the whole inference, this thread could
    # only run between the flag's assignment and the native call, a few bytecodes; with
    # the GIL released it runs for the whole inference.
    session = inferwatch.Session(DET_MODEL)
    x = load_input("ppocr-det/x.npy")
    state = {"in_run": False, "done": False}

    def worker() -> None:
        for _ in range(3):
            state["in_run"] = True
            session.run({"x": x})
            state["in_run"] = False
        state["done"] = True

    thread = threading.Thread(target=worker)
    thread.start()
    iterations_in_run = 0
    while not state["done"]:
        if state["in_run"]:
            iterations_in_run += 1
    thread.join()
    assert iterations_in_run > 1000

