"""Hostile HTTP clients: oversized header blocks, trickled headers, idle connections, in parallel.

Why a module of plain functions (no pytest): the security tests, ``benchmarks/hostile_connections.py``
and, later, a conformance check of any server under test drive the same load and read the same
report. Every client is bounded: a connection is given up after ``hold`` seconds (and then counted
as ``held``, i.e. the server did not close it), the whole load ends after ``seconds``, and every
thread is a daemon joined with a deadline. Pacing uses ``select`` on the socket, so a client notices
at once when the server answers or closes.

A connection ends in one of:

* ``answered``: the server sent an HTTP status line and closed (e.g. 408, 431, 503),
* ``closed``: the server closed without a word (e.g. an idle connection at its deadline),
* ``reset``: the server reset the connection (e.g. closed with unread request bytes),
* ``held``: still open after ``hold`` seconds, the server neither answered nor closed,
* ``stopped``: the load ended first (not the server's doing),
* ``refused``: the connection could not be made.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ENDED_BY_SERVER = frozenset({"answered", "closed", "reset"})
KINDS = ("oversized", "trickled", "idle")
CHUNK = 64 * 1024
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Outcome:
    """How one hostile connection ended."""

    kind: str
    ending: str
    status: int | None
    seconds: float
    sent: int


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _head(host: str) -> bytes:
    """Request line and one header (``Host``): with 99 more, the 100 lines ``http.server`` allows."""
    return b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"


def _finish(sock: socket.socket, kind: str, started: float, sent: int, deadline: float) -> Outcome:
    """Read what the server sends until it closes (or ``deadline``), and classify the ending."""
    data = b""
    ending = "held"
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            chunk = sock.recv(CHUNK)
            if not chunk:
                ending = "answered" if data.startswith(b"HTTP/") else "closed"
                break
            data += chunk[: max(0, 4096 - len(data))]  # the status line is all that matters
    except TimeoutError:
        ending = "held"
    except OSError:
        ending = "answered" if data.startswith(b"HTTP/") else "reset"
    return Outcome(kind, ending, _status(data), time.monotonic() - started, sent)


def _status(data: bytes) -> int | None:
    fields = data.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(fields) >= 2 and fields[0].startswith(b"HTTP/") and fields[1].isdigit():
        return int(fields[1])
    return None


def _readable(sock: socket.socket, timeout: float) -> bool:
    ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
    return bool(ready)


def _connect(url: str, kind: str, started: float) -> tuple[socket.socket | None, Outcome | None]:
    host, port = _address(url)
    try:
        return socket.create_connection((host, port), timeout=10), None
    except OSError:
        return None, Outcome(kind, "refused", None, time.monotonic() - started, 0)


def oversized_headers(
    url: str,
    stop: threading.Event,
    *,
    line_bytes: int = 1_000_000,
    lines: int = 99,
    hold: float = 60.0,
) -> Outcome:
    """Send ``lines`` header lines of ``line_bytes`` each and never end the header block.

    The default is the issue's measurement (99 lines of 1 MB after ``Host``: the 100 lines
    ``http.server`` allows, so without limits the store holds them all until it times out). Sent in
    64 KiB chunks; before each, the socket is checked for an answer, so a refusal is seen at once.
    """
    started = time.monotonic()
    deadline = started + hold
    sock, failed = _connect(url, "oversized", started)
    if sock is None:
        assert failed is not None
        return failed
    with sock:
        sent = 0
        filler = b"A" * CHUNK
        try:
            sock.sendall(_head(_address(url)[0]))
            for index in range(lines):
                line = b"X-Pad-%d: " % index
                remaining = line_bytes
                while remaining > 0 or line:
                    if stop.is_set():
                        return Outcome("oversized", "stopped", None, time.monotonic() - started, sent)
                    if _readable(sock, 0):
                        return _finish(sock, "oversized", started, sent, deadline)
                    take = min(remaining, CHUNK - len(line))
                    piece = line + filler[:take]
                    line, remaining = b"", remaining - take
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return Outcome("oversized", "held", None, time.monotonic() - started, sent)
                    sock.settimeout(left)
                    sock.sendall(piece)
                    sent += len(piece)
                sock.sendall(b"\r\n")
                sent += 2
        except TimeoutError:
            return Outcome("oversized", "held", None, time.monotonic() - started, sent)
        except OSError:
            return _finish(sock, "oversized", started, sent, deadline)
        return _wait_for_server(sock, "oversized", started, sent, deadline, stop)


def trickled_headers(
    url: str, stop: threading.Event, *, interval: float = 0.5, hold: float = 60.0
) -> Outcome:
    """Send a request head one byte every ``interval`` seconds, never ending it (slowloris)."""
    started = time.monotonic()
    deadline = started + hold
    sock, failed = _connect(url, "trickled", started)
    if sock is None:
        assert failed is not None
        return failed
    with sock:
        sent = 0
        try:
            head = _head(_address(url)[0]) + b"X-Slow: "
            sock.sendall(head[:16])  # a request has started: the server owes an answer, not silence
            sent = 16
            pending = head[16:]
            while not stop.is_set():
                if time.monotonic() >= deadline:
                    return Outcome("trickled", "held", None, time.monotonic() - started, sent)
                if _readable(sock, min(interval, deadline - time.monotonic())):
                    return _finish(sock, "trickled", started, sent, deadline)
                byte, pending = (pending[:1], pending[1:]) if pending else (b"a", b"")
                sock.sendall(byte)
                sent += 1
        except OSError:
            return _finish(sock, "trickled", started, sent, deadline)
        return Outcome("trickled", "stopped", None, time.monotonic() - started, sent)


def idle_connection(url: str, stop: threading.Event, *, hold: float = 60.0) -> Outcome:
    """Connect and send nothing."""
    started = time.monotonic()
    sock, failed = _connect(url, "idle", started)
    if sock is None:
        assert failed is not None
        return failed
    with sock:
        return _wait_for_server(sock, "idle", started, 0, started + hold, stop)


def _wait_for_server(
    sock: socket.socket, kind: str, started: float, sent: int, deadline: float, stop: threading.Event
) -> Outcome:
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return Outcome(kind, "held", None, time.monotonic() - started, sent)
        try:
            if _readable(sock, min(POLL_SECONDS, left)):
                return _finish(sock, kind, started, sent, deadline)
        except OSError:
            return Outcome(kind, "reset", None, time.monotonic() - started, sent)
    return Outcome(kind, "stopped", None, time.monotonic() - started, sent)


# --- a valid caller ---------------------------------------------------------------------------


def valid_caller(url: str, headers: Mapping[str, str], *, timeout: float = 30.0) -> Callable[[], int]:
    """One GET of ``url`` with ``headers`` on a new connection per call (as the API service calls);
    returns the status, raises ``OSError``/``http.client.HTTPException`` on transport failures."""
    host, port = _address(url)
    path = urlsplit(url).path or "/"

    def call() -> int:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path, headers=dict(headers))
            answer = conn.getresponse()
            answer.read()
            return answer.status
        finally:
            conn.close()

    return call


# --- the load ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


@dataclass
class HostileReport:
    """What a hostile load saw: endings per kind, the valid caller's answers, the server's memory."""

    seconds: float = 0.0
    endings: dict[str, Counter[str]] = field(default_factory=dict)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    end_seconds: dict[str, list[float]] = field(default_factory=dict)
    valid_statuses: Counter[int] = field(default_factory=Counter)
    valid_errors: list[str] = field(default_factory=list)
    valid_latencies: list[float] = field(default_factory=list)
    rss_samples: list[int] = field(default_factory=list)
    threads_left: int = 0

    def add(self, outcome: Outcome) -> None:
        self.endings.setdefault(outcome.kind, Counter())[outcome.ending] += 1
        if outcome.status is not None:
            self.statuses.setdefault(outcome.kind, Counter())[outcome.status] += 1
        if outcome.ending in ENDED_BY_SERVER:
            self.end_seconds.setdefault(outcome.kind, []).append(outcome.seconds)

    @property
    def ended_by_server(self) -> int:
        return sum(n for c in self.endings.values() for e, n in c.items() if e in ENDED_BY_SERVER)

    @property
    def held(self) -> int:
        return sum(c["held"] for c in self.endings.values())

    @property
    def peak_rss(self) -> int:
        return max(self.rss_samples, default=0)

    def summary(self) -> dict[str, object]:
        mib = 1024 * 1024
        return {
            "seconds": round(self.seconds, 2),
            "hostile": {
                kind: {
                    "endings": dict(self.endings.get(kind, Counter())),
                    "statuses": {str(k): v for k, v in sorted(self.statuses.get(kind, Counter()).items())},
                    "ended_after_p50_s": round(percentile(self.end_seconds.get(kind, []), 0.5), 3),
                    "ended_after_max_s": round(max(self.end_seconds.get(kind, [0.0])), 3),
                }
                for kind in sorted(self.endings)
            },
            "valid": {
                "calls": sum(self.valid_statuses.values()) + len(self.valid_errors),
                "statuses": {str(k): v for k, v in sorted(self.valid_statuses.items())},
                "errors": len(self.valid_errors),
                "error_samples": self.valid_errors[:5],
                "p50_ms": round(percentile(self.valid_latencies, 0.5) * 1000, 2),
                "p99_ms": round(percentile(self.valid_latencies, 0.99) * 1000, 2),
            },
            "peak_rss_mib": round(self.peak_rss / mib, 1),
            "threads_left": self.threads_left,
        }


def run_hostile_load(
    url: str,
    *,
    seconds: float,
    oversized: int = 8,
    trickled: int = 8,
    idle: int = 8,
    valid: Callable[[], int] | None = None,
    rss: Callable[[], int] | None = None,
    hold: float = 60.0,
    line_bytes: int = 1_000_000,
    lines: int = 99,
    trickle_interval: float = 0.5,
    max_valid_calls: int = 100_000,
    sample_interval: float = 0.2,
) -> HostileReport:
    """Keep ``oversized``/``trickled``/``idle`` hostile connections open against ``url`` for ``seconds``
    (each reconnects when the server ends it) while ``valid`` is called over and over; sample ``rss``.

    Returns when the load has ended: every thread is asked to stop and joined within ``hold`` + 10 s
    (``threads_left`` counts any that did not).
    """
    report = HostileReport()
    lock = threading.Lock()
    stop = threading.Event()

    def hostile(kind: str) -> None:
        while not stop.is_set():
            if kind == "oversized":
                outcome = oversized_headers(url, stop, line_bytes=line_bytes, lines=lines, hold=hold)
            elif kind == "trickled":
                outcome = trickled_headers(url, stop, interval=trickle_interval, hold=hold)
            else:
                outcome = idle_connection(url, stop, hold=hold)
            with lock:
                report.add(outcome)
            if outcome.ending == "refused":
                stop.wait(POLL_SECONDS)  # pacing retries of a refused connect, not synchronisation

    def caller() -> None:
        assert valid is not None
        for _ in range(max_valid_calls):
            if stop.is_set():
                return
            began = time.perf_counter()
            try:
                status = valid()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    report.valid_errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            elapsed = time.perf_counter() - began
            with lock:
                report.valid_statuses[status] += 1
                report.valid_latencies.append(elapsed)

    threads = [
        threading.Thread(target=hostile, args=(kind,), name=f"hostile-{kind}-{index}", daemon=True)
        for kind, count in (("oversized", oversized), ("trickled", trickled), ("idle", idle))
        for index in range(count)
    ]
    if valid is not None:
        threads.append(threading.Thread(target=caller, name="valid-caller", daemon=True))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    end = started + seconds
    while True:
        if rss is not None:
            with contextlib.suppress(OSError, ValueError):
                report.rss_samples.append(rss())
        left = end - time.monotonic()
        if left <= 0:
            break
        stop.wait(min(sample_interval, left))  # pacing the samples; nothing sets ``stop`` before the end
    stop.set()
    join_by = time.monotonic() + hold + 10
    for thread in threads:
        thread.join(timeout=max(0.0, join_by - time.monotonic()))
    report.threads_left = sum(thread.is_alive() for thread in threads)
    report.seconds = time.monotonic() - started
    return report


# --- what a process holds (Linux /proc) ---------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` from ``/proc/<pid>/status``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS in /proc/{pid}/status")


def open_sockets(pid: int) -> int:
    """How many sockets ``pid`` has open (its listener included)."""
    count = 0
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            if os.readlink(os.path.join(fd_dir, name)).startswith("socket:"):
                count += 1
    return count
