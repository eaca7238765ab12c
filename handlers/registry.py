"""One handler per Pexip eventType; this map is the only registry."""

from __future__ import annotations

from handlers import accept
from handlers import cancel
from handlers import complete
from handlers import create
from handlers import create_request
from handlers import generic_update
from handlers import reassign
from handlers import reopen
from handlers import request_alternative_date
from handlers import reschedule
from handlers import reschedule_request
from handlers.api import Handler

HANDLERS: dict[str, Handler] = {
    "ACCEPT": accept.handle,
    "REASSIGN": reassign.handle,
    "CANCEL": cancel.handle,
    "COMPLETE": complete.handle,
    "CREATE": create.handle,
    "RESCHEDULE": reschedule.handle,
    "REQUEST_ALTERNATIVE_DATE": request_alternative_date.handle,
    "CREATE_REQUEST": create_request.handle,
    "RESCHEDULE_REQUEST": reschedule_request.handle,
    "REOPEN": reopen.handle,
    "GENERIC_UPDATE": generic_update.handle,
}
