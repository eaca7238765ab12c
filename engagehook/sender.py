"""`engagehook send`: post payload files the way Pexip Engage does, to test a deployment.

The real sender waits 3 s for the first answer, reads nothing but the status, retries a
failed delivery after 2 s (waiting 5 s) and after 10 s (waiting 30 s), then gives up. It sends
a JSON body and no auth header: the one secret it can carry rides in the URL (``?token=``).
This command does the same per file and says for each what became of it, so a user sees
what the sender would have seen.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.logs import redact
from ingest.auth import SIGNATURE_HEADER
from ingest.auth import sign


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: how long to wait before it, and how long to wait for its answer."""

    delay: float
    timeout: float


# The sender's own schedule (its delivery documentation): three attempts in all.
SCHEDULE = (Attempt(0.0, 3.0), Attempt(2.0, 5.0), Attempt(10.0, 30.0))
USER_AGENT = "engagehook-send"


@dataclass(frozen=True)
class Delivery:
    """What became of one file: delivered or given up, after how many attempts, and why."""

    name: str
    delivered: bool
    attempts: int
    status: int | None
    detail: str

    def line(self) -> str:
        """One human line, as `engagehook send` prints it."""
        outcome = "delivered" if self.delivered else "gave up"
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        return (
            f"{self.name}: {outcome} after {self.attempts} attempt(s), last {status}: {self.detail}"
        )


def headers_for(
    body: bytes, hmac_secret: str | None = None, bearer: str | None = None
) -> dict[str, str]:
    """The request headers for ``body``: only what Pexip Engage sends, unless asked for more.

    ``hmac_secret`` and ``bearer`` are what a relay or proxy in front of engagehook may add;
    the real sender adds neither.
    """
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    if hmac_secret:
        headers[SIGNATURE_HEADER] = sign(body, hmac_secret)
    return headers


def url_with_token(url: str, token: str | None) -> httpx.URL:
    """``url`` with ``?token=<token>`` added, as a Pexip Engage webhook configuration holds it."""
    parsed = httpx.URL(url)
    return parsed.copy_merge_params({"token": token}) if token else parsed


def schedule_with(timeout: float | None) -> tuple[Attempt, ...]:
    """The sender's schedule, every attempt waiting ``timeout`` seconds when one is given."""
    if timeout is None:
        return SCHEDULE
    return tuple(Attempt(attempt.delay, timeout) for attempt in SCHEDULE)


def deliver(
    client: httpx.Client,
    url: httpx.URL | str,
    name: str,
    body: bytes,
    headers: dict[str, str],
    *,
    schedule: Sequence[Attempt] = SCHEDULE,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Post ``body`` until a 2xx answer, one attempt per ``schedule`` entry, then give up."""
    attempts = 0
    status: int | None = None
    detail = ""
    for attempt in schedule:
        if attempt.delay:
            sleep(attempt.delay)
        attempts += 1
        try:
            response = client.post(url, content=body, headers=headers, timeout=attempt.timeout)
        except httpx.TimeoutException:
            status, detail = None, f"no answer within {attempt.timeout:g} s"
            continue
        except httpx.HTTPError as exc:
            # An error message may quote the URL, and the URL may hold the token.
            status, detail = None, redact(f"{exc.__class__.__name__}: {exc}")
            continue
        status, detail = response.status_code, _summary(response)
        if response.is_success:
            return Delivery(name, True, attempts, status, detail)
    return Delivery(name, False, attempts, status, detail)


def main(
    args: argparse.Namespace,
    *,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Send every file of ``args.files``; exit status 1 if any was given up."""
    schedule = schedule_with(getattr(args, "timeout", None))
    url = url_with_token(args.url, getattr(args, "token", None))
    bearer = getattr(args, "bearer", None)
    failed = False
    with httpx.Client(transport=transport) as client:
        for name in args.files:
            try:
                body = Path(name).read_bytes()
            except OSError as exc:
                failed = True
                print(f"{name}: cannot read: {exc.strerror}", flush=True)
                continue
            headers = headers_for(body, args.hmac_secret, bearer)
            delivery = deliver(client, url, name, body, headers, schedule=schedule, sleep=sleep)
            failed |= not delivery.delivered
            print(delivery.line(), flush=True)
    return 1 if failed else 0


def _summary(response: httpx.Response) -> str:
    """The status word of our own answers ("queued", "duplicate") or the error code."""
    try:
        answer = response.json()
    except ValueError:
        return response.reason_phrase or "no JSON answer"
    if isinstance(answer, dict):
        parts = [str(answer[key]) for key in ("status", "error", "id") if answer.get(key)]
        return " ".join(parts) or "ok"
    return "ok"
