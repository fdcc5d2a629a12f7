"""Waiting a bounded time for work that may take longer: the work goes on in a daemon
thread whatever the wait (a trigger's dispatch order, the creation of a run), and what
it leaves undone the watcher finishes."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable, TypeVar

T = TypeVar("T")


def at_most(call: Callable[[], T], seconds: float) -> tuple[bool, T | None]:
    """`call()` in a daemon thread, waited for at most `seconds`: (True, its result) if it
    returned in time (its error, if it raised one, is raised here), else (False, None)
    while it goes on."""
    done: Future[T] = Future()

    def run() -> None:
        try:
            done.set_result(call())
        except BaseException as exc:  # handed to the caller, if it still waits
            done.set_exception(exc)

    threading.Thread(target=run, name=f"at-most-{getattr(call, '__name__', 'call')}", daemon=True).start()
    try:
        return True, done.result(timeout=seconds)
    except TimeoutError:  # concurrent.futures' own, since 3.11
        return False, None
