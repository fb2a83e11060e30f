"""Progress of a training run on stderr: a bar per epoch, and log lines that do not break it.

tqdm is an optional extra: it is imported only when a bar or a line is shown, and without it
there is no bar and lines are printed plainly.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol


class ProgressBar(Protocol):
    """What ``train_epoch`` tells the bar each step (a tqdm bar, or one that shows nothing)."""

    def update(self, n: int = 1) -> object:
        """Advance by ``n`` steps."""

    def set_postfix(self, *, refresh: bool = True, **values: Any) -> None:
        """Show ``values`` after the bar."""


class _NoBar:
    """The bar when tqdm is not installed: it shows nothing."""

    def update(self, n: int = 1) -> None:
        """Show nothing."""

    def set_postfix(self, *, refresh: bool = True, **values: Any) -> None:
        """Show nothing."""


def progress_bar(total: int, desc: str, enabled: bool) -> AbstractContextManager[ProgressBar]:
    """A bar over ``total`` steps that goes away when closed; it shows nothing unless ``enabled``."""
    try:
        from tqdm import tqdm
    except ImportError:
        return nullcontext(_NoBar())
    bar: AbstractContextManager[ProgressBar] = tqdm(total=total, desc=desc, disable=not enabled, leave=False)
    return bar


def write_line(line: str) -> None:
    """Print ``line`` on stderr above any bar on screen (plainly when tqdm is not installed)."""
    try:
        from tqdm import tqdm
    except ImportError:
        print(line, file=sys.stderr)
        return
    tqdm.write(line, file=sys.stderr)
