"""Ctrl-C that cannot be lost.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives; in
a TensorFlow or MLflow call that can be inside library code that swallows it, and the run then
carries on as if nothing happened.  The CLI installs ``handle_interrupt``: it raises as usual but
also records the request, and long loops call ``raise_if_interrupted`` at safe points (between
compiled GBP chunks, frames and batches), so a swallowed Ctrl-C still stops the run there.
"""
from __future__ import annotations

import signal

_requested = False
_resume_hints: list[str] = []  # how to continue what an interrupted run finished, for the user


def handle_interrupt(signum=None, frame=None) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def install() -> None:
    """Use ``handle_interrupt`` for SIGINT (main thread only, as signal handlers must be), with
    nothing requested or recorded yet."""
    global _requested
    _requested = False
    _resume_hints.clear()
    signal.signal(signal.SIGINT, handle_interrupt)


def raise_if_interrupted() -> None:
    if _requested:
        raise KeyboardInterrupt


def add_resume_hint(text: str) -> None:
    """Record how the user can continue a run that Ctrl-C stopped (printed on exit)."""
    _resume_hints.append(text)


def resume_hints() -> list[str]:
    return list(_resume_hints)
