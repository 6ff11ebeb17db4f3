"""Waiting on conditions with deadlines (tenacity), never on fixed sleeps."""

from __future__ import annotations

from collections.abc import Callable

from tenacity import RetryCallState, RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential


class WaitTimeout(TimeoutError):
    """A condition did not become true before its deadline."""


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    message: str,
    *,
    max_interval: float = 0.5,
    ignore: tuple[type[BaseException], ...] = (),
) -> None:
    """Call ``condition`` with exponential back-off until it returns true, or raise ``WaitTimeout``
    once ``timeout`` has passed (the last call comes at the deadline, so a caller that waits in
    phases starts its next phase on time).

    Exceptions listed in ``ignore`` count as "not yet"; any other exception propagates at once,
    so a broken probe fails fast instead of waiting out the deadline.
    """

    def probe() -> bool:
        try:
            return bool(condition())
        except ignore:
            return False

    backoff = wait_exponential(multiplier=0.01, min=0.01, max=max_interval)

    def pause(state: RetryCallState) -> float:
        # Never past the deadline: the last probe comes at it, not up to ``max_interval`` after.
        return max(0.0, min(backoff(state), timeout - (state.seconds_since_start or 0.0)))

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=pause,
        retry=retry_if_result(lambda ok: not ok),
    )
    try:
        retrying(probe)
    except RetryError:
        raise WaitTimeout(f"{message} (waited {timeout:g}s)") from None
