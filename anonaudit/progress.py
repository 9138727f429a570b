"""Progress reporting without coupling to any UI.

Capabilities take a ``progress(fraction, message)`` callback; the CLI adapts it to a tqdm bar,
a job adapts it to the job store (where it also checks for cancellation).
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[float, str], None]


def null_progress(fraction: float, message: str = "") -> None:
    """Default callback: ignore progress."""


def scaled(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    """Map a sub-task's 0..1 progress into ``[start, end]`` of the parent's."""

    def report(fraction: float, message: str = "") -> None:
        progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report
