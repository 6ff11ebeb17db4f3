"""``wait_until`` keeps its deadline: the last probe comes at it, not an interval later."""

from __future__ import annotations

import time

import pytest

from pytest_k8s_sa.base.waiting import WaitTimeout, wait_until
from pytest_k8s_sa.cluster.tokens import APISERVER_AUTH_CACHE_SECONDS, wait_past_cache


def test_the_last_probe_comes_at_the_deadline_not_an_interval_later() -> None:
    """With back-off grown to 1 s, a 1.5 s wait used to probe last at ~1.3 s and then sleep 1 s
    more; now it probes once more at 1.5 s and gives up there."""
    calls: list[float] = []
    started = time.monotonic()

    def condition() -> bool:
        calls.append(time.monotonic() - started)
        return False

    with pytest.raises(WaitTimeout, match="never"):
        wait_until(condition, 1.5, "never", max_interval=1.0)
    assert calls[-1] >= 1.5
    assert calls[-2] < 1.5
    assert calls[-1] - 1.5 < 0.5, f"probed {calls[-1] - 1.5:.2f} s past the deadline"


def test_close_polling_starts_when_the_cache_can_run_out() -> None:
    """Light polling (back-off up to 1 s) ends at the moment a cached success can have run out
    (half a second before the cache's end), so a refusal then is seen within the close interval."""
    cache_started = time.monotonic() - (APISERVER_AUTH_CACHE_SECONDS - 3.0)
    closely_from = cache_started + APISERVER_AUTH_CACHE_SECONDS - 0.5
    calls: list[float] = []

    def refused() -> bool:
        calls.append(time.monotonic())
        return calls[-1] >= closely_from + 0.1

    wait_past_cache(refused, cache_started, 30, "still accepted")
    assert calls[-1] - (closely_from + 0.1) < 0.3
    assert len([t for t in calls if t < closely_from]) <= 12, "polled closely before the cache ran out"
