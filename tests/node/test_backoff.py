"""The backoff records of pod sync (`node/backoff.py`): crash streaks and image-pull backoff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.node import backoff
from tests.node.instances import NOW, UID, WALL, instance


def test_crash_delay_curve():
    assert [backoff.crash_delay(n) for n in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]


@given(st.integers(min_value=1, max_value=200))
def test_crash_delay_doubles_to_the_cap(streak):
    assert backoff.crash_delay(streak + 1) == min(backoff.CRASH_BACKOFF_CAP, 2 * backoff.crash_delay(streak))
    assert backoff.CRASH_BACKOFF_INITIAL <= backoff.crash_delay(streak) <= backoff.CRASH_BACKOFF_CAP


def test_a_crash_counts_once_and_a_long_run_resets():
    crashes = backoff.CrashBackoff()
    dead = instance("app", 0, "exited", exit_code=1)
    crashes.restarted(UID, "app", dead, now=10.0)
    crashes.restarted(UID, "app", dead, now=11.0)  # the same dead instance again
    assert crashes.of(UID) == {"app": backoff.Streak(dead.id, 1, 11.0)}
    second = instance("app", 1, "exited", exit_code=1)
    crashes.restarted(UID, "app", second, now=12.0)
    assert crashes.of(UID)["app"].streak == 2
    long_run = instance("app", 2, "exited", exit_code=1, ran=601.0)
    crashes.restarted(UID, "app", long_run, now=13.0)
    assert crashes.of(UID)["app"].streak == 1


def test_crash_records_are_per_pod():
    crashes = backoff.CrashBackoff()
    crashes.restarted("u-1", "app", instance(uid="u-1", state="exited"), now=1.0)
    crashes.restarted("u-2", "app", instance(uid="u-2", state="exited"), now=1.0)
    crashes.forget("u-1")
    assert crashes.of("u-1") == {} and crashes.of("u-2")["app"].streak == 1


def test_crash_wait_counts_from_the_finish_time_or_the_last_restart():
    dead = instance(state="exited", finished_ago=3.0)
    assert backoff.crash_wait(backoff.Streak(streak=1), dead, now=NOW, wall=WALL) == (10.0, pytest.approx(7.0))
    assert backoff.crash_wait(backoff.Streak(streak=0), dead, now=NOW, wall=WALL) == (0.0, 0.0)
    never_ran = instance(state="created", error="boom")
    assert backoff.crash_wait(backoff.Streak(streak=3, restarted_at=NOW - 15), never_ran, now=NOW,
                              wall=WALL) == (40.0, pytest.approx(25.0))


def test_pull_backoff_doubles_to_the_cap_and_resets_on_success():
    pulls = backoff.PullBackoff()
    assert pulls.wait(UID, "img", now=0.0) == 0
    delays = [pulls.failed(UID, "img", now=float(t)) for t in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert pulls.wait(UID, "img", now=6.0) == 300 and pulls.wait(UID, "img", now=400.0) == 0
    assert pulls.wait(UID, "other", now=6.0) == 0 and pulls.wait("u-2", "img", now=6.0) == 0
    pulls.succeeded(UID, "img")
    assert pulls.failed(UID, "img", now=0.0) == 10
    pulls.forget(UID)
    assert pulls.wait(UID, "img", now=0.0) == 0
