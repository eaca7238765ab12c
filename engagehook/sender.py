"""`engagehook send`: post payload files the way Pexip Engage does, to test a deployment.

The real sender waits 3-5 s for an answer, reads nothing but the status, retries a failed
delivery after 2 s and after 10 s, then gives up. This command does the same per file and
says for each what became of it, so a user sees what the sender would have seen.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from ingest.auth import SIGNATURE_HEADER
from ingest.auth import sign

DEFAULT_TIMEOUT_SECONDS = 4.0  # the sender's own lies between 3 and 5 s
RETRY_DELAYS_SECONDS = (2.0, 10.0)  # after the first and the second failed delivery
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


def headers_for(body: bytes, token: str | None, hmac_secret: str | None) -> dict[str, str]:
    """The request headers the sender would put on ``body``."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if hmac_secret:
        headers[SIGNATURE_HEADER] = sign(body, hmac_secret)
    return headers


def deliver(
    client: httpx.Client,
    url: str,
    name: str,
    body: bytes,
    headers: dict[str, str],
    *,
    delays: Sequence[float] = RETRY_DELAYS_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Post ``body`` until a 2xx answer, waiting ``delays`` between attempts, then give up."""
    attempts = 0
    status: int | None = None
    detail = ""
    for delay in (None, *delays):
        if delay is not None:
            sleep(delay)
        attempts += 1
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            status, detail = None, "timed out"
            continue
        except httpx.HTTPError as exc:
            status, detail = None, f"{exc.__class__.__name__}: {exc}"
            continue
        status, detail = response.status_code, _summary(response)
        if response.is_success:
            return Delivery(name, True, attempts, status, detail)
    return Delivery(name, False, attempts, status, detail)


def main(
    args: argparse.Namespace,
    *,
    delays: Sequence[float] = RETRY_DELAYS_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Send every file of ``args.files``; exit status 1 if any was given up."""
    timeout = getattr(args, "timeout", None) or DEFAULT_TIMEOUT_SECONDS
    failed = False
    with httpx.Client(timeout=timeout, transport=transport) as client:
        for name in args.files:
            try:
                body = Path(name).read_bytes()
            except OSError as exc:
                failed = True
                print(f"{name}: cannot read: {exc.strerror}", flush=True)
                continue
            headers = headers_for(body, args.token, args.hmac_secret)
            delivery = deliver(client, args.url, name, body, headers, delays=delays, sleep=sleep)
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
