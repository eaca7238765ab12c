"""Push every cancelled appointment to a CRM: an engagehook user hook, as the README shows it.

Enable it with ``ENGAGEHOOK_HOOK_MODULES=examples.crm_cancellations`` and ``CRM_URL``.
"""

from __future__ import annotations

import os

import httpx

from handlers.errors import PermanentError
from handlers.hook_event import HookEvent
from handlers.hooks import on

# Under ENGAGEHOOK_HOOK_TIME_LIMIT (30 s): a slow CRM fails this attempt, which is retried.
TIMEOUT = httpx.Timeout(10.0)


def crm_client() -> httpx.Client:
    """The CRM's HTTP client; tests replace it with one on ``httpx.MockTransport``."""
    return httpx.Client(base_url=os.environ["CRM_URL"], timeout=TIMEOUT)


@on("CANCEL")
def push_cancellation(event: HookEvent) -> None:
    """Tell the CRM the appointment was cancelled, once per event id."""
    with crm_client() as crm:
        response = crm.post(
            f"/appointments/{event.appointment_id}/cancellation",
            json={
                "cancelledAt": event.updated_at.isoformat(),
                "previousStatus": (event.prior_state or {}).get("status"),
                "start": event.start.isoformat() if event.start else None,
                "answers": event.answers,
            },
            # The same event may run this hook again (a retry, a replay): the CRM keeps the
            # first request per key and answers later ones without acting twice.
            headers={"Idempotency-Key": event.id},
        )
    if response.status_code in (400, 404, 422):
        # Retrying cannot help: dead-letter now, replay once the CRM data is fixed.
        raise PermanentError(f"CRM refused the cancellation: HTTP {response.status_code}")
    # 5xx, 429, timeouts raise: engagehook retries with backoff, then dead-letters.
    response.raise_for_status()
