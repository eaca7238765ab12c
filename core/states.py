"""The states an event record and a hook run can be in, and which of them are final.

The store, the queries, retention and the API's response schemas all name states from here:
they are part of the contract (the admin API and the CLI print them), so they live on the ground
floor with the other names.
"""

from __future__ import annotations

EVENT_STATES = ("queued", "processed", "duplicate", "stale", "retrying", "dead_lettered")
# An event id in one of these states has been decided; another delivery is a duplicate.
# A dead-lettered id is not taken: its effect never committed, so a new delivery (or a replay)
# is tried again instead of being called a duplicate (contract semantics 1).
TAKEN_STATES = frozenset({"processed", "stale"})
# States in which an event id needs nothing more from a worker.
FINAL_STATES = TAKEN_STATES | {"dead_lettered"}
# What retention may delete: outcomes nothing will ever act on again (see handlers/pruning.py).
FINISHED_EVENT_STATES = ("processed", "duplicate", "stale")

HOOK_RUN_STATES = ("pending", "running", "done", "dead_lettered")
# A hook run in one of these states is never claimed again (a replay makes it pending first).
FINISHED_HOOK_RUN_STATES = frozenset({"done", "dead_lettered"})
# What retention may delete of an event's hook runs.
PRUNABLE_HOOK_RUN_STATES = ("done",)
