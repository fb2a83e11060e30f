"""The gap rule a worker or scan runs with: ``--gaps`` resolved per input kind, calendars loaded.

``session`` reads trading sessions (and lunch breaks) from ``exchange_calendars``, an optional
extra (``pip install 'bullflag-stream[calendars]'``); a missing library or an unknown calendar
is a :class:`consumer.config.SettingsError` naming the setting, so startup stops with one line.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np

from consumer.config import Settings, SettingsError
from consumer.core.gaps import GapPolicy, GapRule

DEFAULT_GAPS = {"ticks": "flat", "bars": "skip"}
"""``--gaps auto`` per input kind: trades go quiet inside a session, so an empty interval is a
real flat bar; a bar feed or file only holds bars that traded, so a missing one is a closed market."""


def gap_policy(settings: Settings, input_kind: str) -> GapPolicy:
    """The policy ``settings.gaps`` means for records of ``input_kind`` ('ticks' or 'bars')."""
    policy = DEFAULT_GAPS[input_kind] if settings.gaps == "auto" else settings.gaps
    if policy not in ("flat", "skip", "session"):
        raise SettingsError(f"setting --gaps: unknown policy {settings.gaps!r}")
    return policy  # type: ignore[return-value]


def gap_rule(settings: Settings, input_kind: str) -> GapRule:
    """The gap rule for ``settings`` and ``input_kind``, loading the calendar for ``session``."""
    policy = gap_policy(settings, input_kind)
    if policy == "flat":
        return GapRule.flat()
    if policy == "skip":
        return GapRule.skip()
    opens, closes = calendar_sessions(settings.calendar)
    return GapRule.session(opens, closes, settings.bar_interval_ms)


def calendar_sessions(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(opens, closes) int64[k] epoch ms of every trading period of calendar ``name``, sorted;
    a session with a break counts as two periods."""
    if not name:
        raise SettingsError("setting --calendar: --gaps session needs a calendar, e.g. --calendar XNYS")
    try:
        xcals: Any = importlib.import_module("exchange_calendars")
    except ImportError:
        raise SettingsError(
            "setting --calendar: --gaps session needs exchange_calendars: "
            "pip install 'bullflag-stream[calendars]'"
        ) from None
    try:
        with warnings.catch_warnings():
            # exchange_calendars 4.13 uses pandas APIs that pandas 3.1 deprecates; not ours to fix.
            warnings.simplefilter("ignore", DeprecationWarning)
            calendar = xcals.get_calendar(name)
    except xcals.errors.InvalidCalendarName:
        raise SettingsError(
            f"setting --calendar: unknown calendar {name!r} (exchange_calendars.get_calendar_names() "
            "lists them, e.g. XNYS, XLON, XTKS)"
        ) from None
    opens, closes = _ms(calendar.opens), _ms(calendar.closes)
    breaks, resumes = _ms(calendar.break_starts), _ms(calendar.break_ends)
    split = (breaks != _NAT) & (resumes != _NAT)
    starts = np.concatenate([opens[~split], opens[split], resumes[split]])
    ends = np.concatenate([closes[~split], breaks[split], closes[split]])
    order = np.argsort(starts, kind="stable")
    return starts[order], ends[order]


_NAT = np.iinfo(np.int64).min


def _ms(column: Any) -> np.ndarray:
    """A pandas datetime column as int64 epoch ms (missing values as ``_NAT``)."""
    values = column.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT"))
    raw = values.astype(np.int64)
    return np.where(raw == _NAT, _NAT, raw // 1_000_000)
