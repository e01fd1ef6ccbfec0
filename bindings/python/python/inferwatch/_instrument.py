"""Timing for sessions of other inference libraries, such as onnxruntime."""

from __future__ import annotations

from typing import Any, Optional, Protocol

from inferwatch._native import Monitor


class RunnableSession(Protocol):
    """Anything with the ``run`` method of ``onnxruntime.InferenceSession``."""

    def run(
        self,
        output_names: Optional[list[str]],
        input_feed: dict[str, Any],
        run_options: Any = None,
    ) -> list[Any]: ...


class InstrumentedInferenceSession:
    """An ``onnxruntime.InferenceSession`` whose ``run`` calls are timed by a monitor.

    ``run`` takes the same arguments as ``InferenceSession.run`` and records each call in
    ``monitor``: its duration when it returns, a failed inference when it raises (the
    exception propagates unchanged). Every other attribute, such as ``get_inputs()``, is
    read from the wrapped session. Calls through ``run_with_ort_values`` or
    ``run_with_iobinding`` are not timed.
    """

    def __init__(self, session: RunnableSession, monitor: Monitor) -> None:
        self._session = session
        self._run = session.run
        self._monitor = monitor

    @property
    def session(self) -> RunnableSession:
        """The wrapped session."""
        return self._session

    @property
    def monitor(self) -> Monitor:
        """The monitor that records each ``run``."""
        return self._monitor

    def run(
        self,
        output_names: Optional[list[str]],
        input_feed: dict[str, Any],
        run_options: Any = None,
    ) -> list[Any]:
        """Run the wrapped session and record how long the call took."""
        result: list[Any] = self._monitor.time(self._run, output_names, input_feed, run_options)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def __repr__(self) -> str:
        return f"InstrumentedInferenceSession({self._session!r}, {self._monitor!r})"


def instrument(
    session: RunnableSession, monitor: Optional[Monitor] = None
) -> InstrumentedInferenceSession:
    """Wrap ``session`` so that each ``run`` is recorded in ``monitor``.

    Without ``monitor``, a new ``Monitor()`` with the default 300 s window is created; it is
    available as the ``monitor`` attribute of the result.
    """
    return InstrumentedInferenceSession(session, monitor if monitor is not None else Monitor())
