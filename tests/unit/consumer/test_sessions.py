"""``--gaps`` resolved per input kind, and calendars loaded from exchange_calendars."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.config import Settings, SettingsError
from consumer.sessions import calendar_sessions, gap_policy, gap_rule


def test_auto_is_flat_for_ticks_and_skip_for_bars() -> None:
    assert gap_policy(Settings(), "ticks") == "flat"
    assert gap_policy(Settings(), "bars") == "skip"
    assert gap_policy(Settings(gaps="skip"), "ticks") == "skip"


def test_session_needs_a_known_calendar() -> None:
    with pytest.raises(SettingsError, match="--calendar"):
        Settings(gaps="session")
    with pytest.raises(SettingsError, match="unknown calendar 'NOPE'"):
        gap_rule(Settings(gaps="session", calendar="NOPE"), "ticks")


def test_an_xnys_daily_rule_fills_weekdays_and_not_weekends() -> None:
    pytest.importorskip("exchange_calendars")
    rule = gap_rule(Settings(gaps="session", calendar="XNYS", bar_interval="1d"), "bars")
    day = 86_400_000
    thursday = 1_732_752_000_000 // day  # 2024-11-28, Thanksgiving: closed
    days = np.arange(thursday - 3, thursday + 5)  # Mon 25 .. Tue 3 Dec
    assert rule.allowed(days).tolist() == [True, True, True, False, True, False, False, True]


def test_breaks_split_a_session() -> None:
    pytest.importorskip("exchange_calendars")
    opens, closes = calendar_sessions("XHKG")
    assert (opens[1:] >= closes[:-1]).all()
    assert len(opens) > 1.5 * len(np.unique(opens // 86_400_000))
