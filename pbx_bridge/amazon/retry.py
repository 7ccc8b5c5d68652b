"""Retries with exponential backoff and full jitter, honouring ``Retry-After``, bounded in count
and in total time. One loop serves the token endpoint and every API call."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from typing import Callable, TypeVar

from ..host import Clock
from .errors import NetworkError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
UNREACHABLE_ATTEMPTS = 3  # connection refused / unknown host: 3 tries, about 1.5 s in all
UNREACHABLE_DELAY = 0.5
ANNOUNCE_AFTER = 3.0  # retries that keep the user waiting longer than this are announced
T = TypeVar("T")


def announce(line: str) -> None:
    """A retry the user would otherwise wait through in silence."""
    from .. import log
    log.event("retry", "warning", line)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    base: float = 0.5
    cap: float = 20.0
    deadline: float = 120.0  # seconds across all attempts of one call

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        backoff = rng.uniform(0, min(self.cap, self.base * (2 ** attempt)))
        if retry_after is not None:
            return max(retry_after, backoff)
        return backoff


class Transient(Exception):
    """An attempt that may succeed if tried again."""

    def __init__(self, reason: str, retry_after: float | None = None,
                 maybe_applied: bool = True, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable  # no connection at all: retried only briefly
        self.retry_after = retry_after
        # a cut connection or a 5xx may come after the server did the work; a 429 never does
        self.maybe_applied = maybe_applied


def with_retries(what: str, attempt: Callable[[], T], policy: RetryPolicy, clock: Clock,
                 rng: random.Random, already_done: Callable[[], T | None] | None = None) -> T:
    """Run ``attempt`` until it returns. After a transient failure that may have been applied,
    ``already_done`` (for calls that are not idempotent) may end the loop with its result."""
    start = clock.monotonic()
    tries = 0
    while True:
        try:
            return attempt()
        except Transient as t:
            if already_done is not None and t.maybe_applied:
                done = already_done()
                if done is not None:
                    return done
            tries += 1
            elapsed = clock.monotonic() - start
            if t.unreachable:  # a wrong URL or a host that is down: say so within seconds
                delay = UNREACHABLE_DELAY * tries
                if tries >= UNREACHABLE_ATTEMPTS or elapsed + delay > policy.deadline:
                    raise NetworkError(f"{what}: {t.reason} ({tries} attempt(s) in "
                                       f"{elapsed:.1f} s); check the URL in the settings and "
                                       "that this host can reach it") from None
                announce(f"{what}: {t.reason}; retrying in {delay:.1f} s (attempt "
                         f"{tries + 1} of {UNREACHABLE_ATTEMPTS})")
                clock.sleep(delay)
                continue
            delay = policy.delay(tries - 1, t.retry_after, rng)
            if tries >= policy.attempts or elapsed + delay > policy.deadline:
                raise NetworkError(f"{what}: gave up after {tries} attempts in "
                                   f"{elapsed:.0f} s: {t.reason}") from None
            if elapsed + delay >= ANNOUNCE_AFTER:  # a long wait is never silent
                announce(f"{what}: {t.reason}; retrying in {delay:.1f} s (attempt "
                         f"{tries + 1} of at most {policy.attempts}, {elapsed:.0f} s so far)")
            clock.sleep(delay)


def parse_retry_after(value: str | None, clock: Clock) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - clock.now())
