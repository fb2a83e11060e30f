"""Idle closes: the decision log's rules, the pipeline against the reference model, and a
restart after a crash anywhere around idle closes publishing exactly what a clean run does.

The crash test drives the pure pipeline as the worker does for an idle close (the idle log,
then the outputs, then bars and checkpoint, then the commit) and cuts it anywhere; a pipeline
restored from the state log replays the logged decisions at their offsets. Without the log,
ticks that the first run dead-lettered as ``late`` would join bars after the restart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.bars import NO_BAR
from consumer.core.idle import IDLE_KEY, IdleDecision, IdleLog, IdleLogError, closes_any
from consumer.core.pipeline import BarPipeline
from consumer.core.record_rules import RejectReason
from consumer.core.state import CHECKPOINT_KEY, CheckpointBook, StateReplay
from tests.reference import reference_run
from tests.strategies import examples
from tests.unit.consumer.core.test_state import (
    INTERVAL,
    SEQ_LEN,
    DeadLetters,
    Outputs,
    dead_letters,
    new_pipeline,
    outputs_of,
    state_records,
    stream,
)

decisions = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10**6)), max_size=8).map(
    lambda drawn: tuple(IdleDecision(at, ms) for at, ms in sorted(drawn))
)


@settings(max_examples=examples(200), deadline=None)
@given(decisions, st.one_of(st.none(), st.integers(0, 10**6)), st.one_of(st.none(), st.integers(0, 60)))
def test_split_folds_exactly_the_decisions_at_or_before_the_commit(
    pending: tuple[IdleDecision, ...], floor: int | None, committed: int | None
) -> None:
    log = IdleLog(floor, pending).split(committed)
    if committed is None:
        assert log == IdleLog(floor, pending)
        return
    folded = [d.event_time_ms for d in pending if d.at <= committed] + ([] if floor is None else [floor])
    assert log.floor_ms == (max(folded) if folded else None)
    assert log.pending == tuple(d for d in pending if d.at > committed)
    assert IdleLog.decode(log.encode()) == log


def test_a_decision_joins_the_log_in_offset_order_only() -> None:
    log = IdleLog().with_decision(IdleDecision(10, 5_000), committed=None)
    log = log.with_decision(IdleDecision(12, 4_000), committed=10)
    assert log == IdleLog(5_000, (IdleDecision(12, 4_000),))
    with pytest.raises(ValueError, match="comes before the pending one at 12"):
        log.with_decision(IdleDecision(11, 9_000), committed=None)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"[", "corrupt idle log"),
        (b'{"v": 2, "floor_ms": null, "pending": []}', "idle log version 2"),
        (b'{"v": 1, "pending": []}', "corrupt idle log"),
        (b'{"v": 1, "floor_ms": null, "pending": [[1, true]]}', "corrupt idle log"),
        (b'{"v": 1, "floor_ms": "x", "pending": []}', "corrupt idle log"),
        (b'{"v": 1, "floor_ms": null, "pending": [[1]]}', "corrupt idle log"),
    ],
)
def test_unreadable_idle_logs_are_refused_by_name(value: bytes, problem: str) -> None:
    with pytest.raises(IdleLogError, match=problem):
        IdleLog.decode(value)


def test_closes_any_is_true_once_the_event_time_minus_lateness_reaches_an_open_bars_end() -> None:
    starts = np.array([NO_BAR, 5_000, 3_000, NO_BAR], dtype=np.int64)
    assert not closes_any(starts, 1_000, 500, 4_499)
    assert closes_any(starts, 1_000, 500, 4_500)
    assert not closes_any(np.full(3, NO_BAR, dtype=np.int64), 1_000, 0, 10**15)


T0 = 1_700_000_000_000


def ordered_stream(
    steps: list[tuple[int, str]],
) -> tuple[list[bytes], list[bytes], list[tuple[int, str, int]]]:
    """Ticks at the drawn time steps (negative ones go back in time)."""
    values, keys, ticks = [], [], []
    ts = T0
    for offset, (step, symbol) in enumerate(steps):
        ts += step
        values.append(orjson.dumps({"symbol": symbol, "ts": ts, "price": 10.0 + offset % 7, "size": 1}))
        keys.append(symbol.encode())
        ticks.append((offset, symbol, ts))
    return values, keys, ticks


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(st.tuples(st.integers(-300, 1_600), st.sampled_from(["A", "B", "C"])), min_size=1, max_size=100),
    st.lists(st.tuples(st.integers(0, 100), st.integers(0, 4_000)), max_size=4),
)
def test_idle_closes_close_score_and_make_later_ticks_late_as_the_reference_says(
    steps: list[tuple[int, str]], drawn: list[tuple[int, int]]
) -> None:
    values, keys, ticks = ordered_stream(steps)
    pipeline = BarPipeline(INTERVAL, 0, seq_len=4)
    scored: set[tuple[str, int]] = set()
    late: set[int] = set()
    idle: list[tuple[int, int]] = []
    lo, commit = 0, 0
    closes = sorted((min(at, len(values)), ahead) for at, ahead in drawn)
    for at, ahead in [*closes, (len(values), None)]:
        outcomes = [pipeline.process(0, values[lo:at], keys[lo:at], list(range(lo, at)))] if at > lo else []
        if ahead is not None:
            event_time = max(ts for _, _, ts in ticks[: max(at, 1)]) + ahead
            outcomes.append(pipeline.close_idle(0, event_time, at))
            idle.append((at, event_time))
        for outcome in outcomes:
            scored |= set(zip(outcome.windows.symbols, outcome.windows.bar_end_ts.tolist(), strict=True))
            late |= {lo + r.index for r in outcome.rejects if r.reason is RejectReason.LATE}
            commit = outcome.commit
        lo = at
    reference = reference_run(ticks, len(values), INTERVAL, 4, idle_closes=idle)
    assert scored == reference.scored
    assert late == reference.late
    assert commit == reference.commit


@dataclass(frozen=True)
class Step:
    """A batch of records [lo, hi), or (``idle``) an idle close at ``hi`` to ``event_time_ms``."""

    lo: int
    hi: int
    idle: bool = False
    event_time_ms: int = 0


def plan(values: list[bytes], keys: list[bytes], cuts: list[int], ahead: list[int]) -> list[Step]:
    """Batches at ``cuts``, an idle close after the i-th batch ``ahead[i]`` ms past its newest
    tick where that closes a bar (as the worker decides)."""
    pipeline, steps = new_pipeline(), []
    bounds = [0, *cuts, len(values)]
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        pipeline.process(0, values[lo:hi], keys[lo:hi], np.arange(lo, hi))
        steps.append(Step(lo, hi))
        newest = max(orjson.loads(v)["ts"] for v in values[:hi])
        if k < len(ahead) and pipeline.idle_close_due(0, newest + ahead[k]):
            pipeline.close_idle(0, newest + ahead[k], hi)
            steps.append(Step(hi, hi, True, newest + ahead[k]))
    return steps


def run_until_crash(
    values: list[bytes], keys: list[bytes], steps: list[Step], crash: int, written: float
) -> tuple[Outputs, DeadLetters, list[tuple[bytes, bytes]], int | None]:
    """Run ``steps`` like the worker until step ``crash``, which dies after writing ``written``
    of its records (the idle log first, then outputs, then the state): the acknowledged outputs
    and dead letters, the state log, the committed offset."""
    pipeline, book, log, idle = new_pipeline(), CheckpointBook(), [], IdleLog()
    published: Outputs = {}
    dead: DeadLetters = set()
    committed: int | None = None
    for k, step in enumerate(steps):
        records: list[tuple[bytes, bytes]] = []
        if step.idle:
            idle = idle.with_decision(IdleDecision(step.hi, step.event_time_ms), committed)
            records.append((IDLE_KEY, idle.encode()))
            outcome = pipeline.close_idle(0, step.event_time_ms, step.hi)
        else:
            lo, hi = step.lo, step.hi
            outcome = pipeline.process(0, values[lo:hi], keys[lo:hi], np.arange(lo, hi))
        checkpoint = book.checkpoint(0, step.hi, outcome.commit, outcome.mark)
        records += [
            (b"outputs", b""),
            *state_records(pipeline, outcome),
            (CHECKPOINT_KEY, checkpoint.encode()),
        ]
        done = records[: int(len(records) * written)] if k == crash else records
        log += [record for record in done if record[0] != b"outputs"]
        if (b"outputs", b"") in done:
            published |= outputs_of(outcome)
            dead |= dead_letters(outcome, np.arange(step.lo, step.hi))
        if k == crash:
            return published, dead, log, committed
        committed = outcome.commit
        book.committed(0, outcome.commit, outcome.mark)
    return published, dead, log, committed


def restart(
    values: list[bytes],
    keys: list[bytes],
    steps: list[Step],
    log: list[tuple[bytes, bytes]],
    committed: int | None,
) -> tuple[Outputs, DeadLetters]:
    """A new pipeline from the state log, fed again from ``committed``: the logged decisions ahead
    of it replay at their offsets; decisions the log never got are made again, as a worker
    would on the same quiet partition."""
    pipeline = new_pipeline()
    replay = StateReplay(INTERVAL, SEQ_LEN)
    replay.apply([k for k, _ in log], [v for _, v in log])
    restored = replay.result()
    pipeline.restore_partition(0, restored, committed)
    start = committed or 0
    replayed = {d.at: d.event_time_ms for d in restored.idle.split(committed).pending}
    anew = {s.hi: s.event_time_ms for s in steps if s.idle and s.hi > start and s.hi not in replayed}
    closes = sorted((replayed | anew).items())
    published: Outputs = {}
    dead: DeadLetters = set()
    lo = start
    for at, event_time in [*closes, (len(values), None)]:
        outcome = pipeline.process(0, values[lo:at], keys[lo:at], np.arange(lo, at))
        published |= outputs_of(outcome)
        dead |= dead_letters(outcome, np.arange(lo, at))
        if event_time is not None:
            published |= outputs_of(pipeline.close_idle(0, event_time, at))
        lo = at
    return published, dead


@settings(max_examples=examples(150), deadline=None)
@given(
    seed=st.integers(0, 1_000),
    cuts=st.lists(st.integers(1, 299), min_size=1, max_size=8, unique=True).map(sorted),
    ahead=st.lists(st.sampled_from([0, 800, 2_000, 6_000]), min_size=1, max_size=9),
    crash=st.integers(0, 20),
    written=st.sampled_from([0.0, 0.2, 0.6, 1.0]),
)
def test_restart_after_a_crash_around_idle_closes_is_exact(
    seed: int, cuts: list[int], ahead: list[int], crash: int, written: float
) -> None:
    values, keys = stream(seed, 300)
    steps = plan(values, keys, cuts, ahead)
    clean, clean_dead, _, _ = run_until_crash(values, keys, steps, -1, 1.0)
    before, dead_before, log, committed = run_until_crash(
        values, keys, steps, min(crash, len(steps) - 1), written
    )
    after, dead_after = restart(values, keys, steps, log, committed)
    for key in before.keys() & after.keys():
        assert before[key] == after[key], "a repeated output must be identical"
    union = before | after
    assert union.keys() == clean.keys()
    for key, content in clean.items():
        assert union[key] == content
    assert dead_before | dead_after == clean_dead
