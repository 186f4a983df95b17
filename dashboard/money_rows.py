"""The key's money lock and the records of its moves: what the money service and its settlement share.

``dashboard.topups`` moves money and ``dashboard.settlement`` settles the moves whose outcome
was not known; both hold the key's lock (``key_lock``) and write a move's outcome on its ledger
row and audit event the same way (``finish_move``, ``record_event``).
"""

from contextlib import ExitStack, contextmanager

from dashboard.upstream import get_sub_key_now
from ledger import audit
from ledger.models import AuditEvent, TopUp
from lib import stored_text
from work import leases

# The key's money lock: a holder killed mid-move frees it after this long. A move holds it
# for one read and one write, each bounded by the client's timeouts (well under a minute).
MONEY_LOCK_SECONDS = 120
# How long a move waits for another move on the same key to finish before giving up.
MONEY_LOCK_WAIT_SECONDS = 10


class KeyBusy(Exception):
    """Another money move on this key holds its lock."""



def action_of(amount):
    return AuditEvent.Action.RECLAIM if amount < 0 else AuditEvent.Action.TOPUP



def lock_name(sub_key_id):
    return f"money:{sub_key_id}"


@contextmanager
def key_lock(sub_key_id, wait_seconds=None):
    """Hold the key's money lock for the block: one move (or settlement) on the key at a time.

    A lease row in the database (``work.leases``), so it holds across web processes,
    workers and machines; a holder killed mid-move leaves it to expire after
    MONEY_LOCK_SECONDS. Raises KeyBusy when another holder keeps it past ``wait_seconds``
    (MONEY_LOCK_WAIT_SECONDS when None). Not re-entrant: a holder asking again waits on itself.
    Take it outside a transaction: inside one, other processes would not see it.
    """
    wait_seconds = MONEY_LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds
    with ExitStack() as stack:
        try:
            lease = stack.enter_context(leases.held(lock_name(sub_key_id), MONEY_LOCK_SECONDS, wait_seconds))
        except leases.LeaseHeld as error:
            raise KeyBusy(sub_key_id) from error
        yield lease



def _budget_change(row):
    before = row.budget_before
    return {"budget": (before, None if before is None else before + row.amount)}


def record_event(row, outcome, message=""):
    """The row's audit event; its token ties the two, so settling one settles both."""
    return audit.record(
        row.actor,
        action_of(row.amount),
        outcome,
        sub_key_id=row.sub_key_id,
        label=row.key_label,
        key_id_short=row.key_id_short,
        changes=_budget_change(row),
        message=message,
        form_token=row.token,
        actor_name=row.actor_name,
    )


def finish_move(row, outcome, message="", audit_note="", not_applied=None):
    """Record how the move ended on its ledger row and its audit event (written now if it was not yet)."""
    row.outcome = outcome
    row.message = message
    row.save(update_fields=["outcome", "message"])
    # Two stored messages (notes) joined as text would read as neither: kept as lines, each read in the reader's language.
    parts = [part for part in (audit_note, message) if part]
    text = stored_text.lines(*parts) if len(parts) > 1 else (parts[0] if parts else "")
    event = AuditEvent.objects.filter(form_token=row.token).first()
    if event is None:
        event = record_event(row, outcome, text)
    audit.finish(event, outcome, message=text, not_applied=not_applied)


def moves_of(sub_key_id):
    """The key's budget moves: its top-ups and reclaims, not a delete's return (settled with the delete)."""
    return TopUp.objects.filter(sub_key_id=str(sub_key_id), kind=TopUp.Kind.MOVE)


def read_key(sub_key_id):
    """The key as derouter reports it now, or None when it has no such key (one call at any number of keys)."""
    return get_sub_key_now(sub_key_id)

