"""Waiting on conditions with deadlines (tenacity), never on fixed sleeps."""

from __future__ import annotations

from collections.abc import Callable

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential


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
    """Call ``condition`` with exponential back-off until it returns true.

    Exceptions listed in ``ignore`` count as "not yet"; any other exception propagates at once,
    so a broken probe fails fast instead of waiting out the deadline.
    """

    def probe() -> bool:
        try:
            return bool(condition())
        except ignore:
            return False

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.01, min=0.01, max=max_interval),
        retry=retry_if_result(lambda ok: not ok),
    )
    try:
        retrying(probe)
    except RetryError:
        raise WaitTimeout(f"{message} (waited {timeout:g}s)") from None
