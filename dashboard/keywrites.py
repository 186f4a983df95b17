"""Create, edit and delete Client Keys: one upstream call each, always ending with a known record.

Every write here makes its upstream call once (never retried), writes the audit
event with the outcome the one rule in ``dashboard.outcomes`` gives (ok, refused,
unknown), and returns a ``KeyWrite`` the view only renders. When the outcome is
unknown, the result carries derouter's state as it reports it now, so the page
can show what is true instead of guessing.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from dashboard import audit
from dashboard.models import AuditEvent, Outcome
from dashboard.outcomes import ErrorOutcome, outcome_of_write_error
from dashboard.upstream import KeyState, get_key_state
from derouter import client
from derouter.client import DerouterError

# After a create whose outcome is unknown, the newest keys are shown so a person can look for it.
RECENT_KEYS_AFTER_UNKNOWN = 5


@dataclass(frozen=True)
class KeyWrite:
    """How a create, edit or delete ended.

    ``event`` is its audit event. ``failure`` says why when it did not end "ok".
    ``state`` is derouter's state read again after an unknown outcome. ``created``
    is the new key (its secret shown once). ``repeated`` is True when the form had
    been submitted before: ``event`` is then that first attempt and nothing was sent.
    """

    event: AuditEvent
    failure: ErrorOutcome | None = None
    state: KeyState | None = None
    created: client.CreatedSubKey | None = None
    repeated: bool = False

    @property
    def outcome(self):
        return self.event.outcome

    @property
    def is_ok(self):
        return self.event.outcome == Outcome.OK

    @property
    def is_refused(self):
        return self.event.outcome == Outcome.REFUSED

    @property
    def is_unknown(self):
        return self.event.outcome == Outcome.UNKNOWN

    @property
    def was_sent(self):
        return self.failure is None or self.failure.was_sent

    @property
    def recent_keys(self):
        """The newest keys derouter reports now (after an unknown create), or None if it could not say."""
        if self.state is None or not self.state.reachable:
            return None
        newest = sorted(self.state.sub_keys, key=lambda sub_key: (sub_key.created_at is not None, sub_key.created_at), reverse=True)
        return newest[:RECENT_KEYS_AFTER_UNKNOWN]


def _record_failure(event, error):
    """Settle the event from an upstream error; re-raise the errors the console's error page explains."""
    failure = outcome_of_write_error(error)
    audit.finish(event, failure.outcome, message=failure.message)
    if failure.needs_error_page:
        raise error
    return failure


def _start(user, action, sub_key=None, **fields):
    """The audit event of an attempt, written "pending" before the upstream is asked."""
    return audit.record(user, action, Outcome.PENDING, sub_key=sub_key, **fields)


def create_key(user, *, token, label, budget, rpm_limit):
    """POST a new key once per form token; a token seen before returns its first attempt."""
    changes = {"label": ("", label), "budget": (None, budget), "rpm_limit": (None, rpm_limit)}
    try:
        with transaction.atomic():
            event = _start(user, AuditEvent.Action.CREATE, label=label, changes=changes, form_token=token)
    except IntegrityError:
        return KeyWrite(AuditEvent.objects.get(form_token=token), repeated=True)
    try:
        created = client.create_sub_key(budget, label=label, rpm_limit=rpm_limit)
    except DerouterError as error:
        failure = _record_failure(event, error)
        state = get_key_state() if failure.is_unknown else None
        return KeyWrite(event, failure=failure, state=state)
    audit.finish(event, Outcome.OK, sub_key_id=created.id, key_id_short=created.key_id)
    return KeyWrite(event, created=created)


def edit_key(user, sub_key, changes):
    """PUT the changed fields ({name: (before, after)}) of a key."""
    event = _start(user, AuditEvent.Action.EDIT, sub_key, changes=changes)
    try:
        client.update_sub_key(sub_key.id, **{name: after for name, (_, after) in changes.items()})
    except DerouterError as error:
        failure = _record_failure(event, error)
        state = get_key_state(sub_key.id) if failure.is_unknown else None
        return KeyWrite(event, failure=failure, state=state)
    audit.finish(event, Outcome.OK)
    return KeyWrite(event)


def delete_key(user, sub_key):
    """DELETE a key; its unspent budget returns to the available balance."""
    returned = max(sub_key.remaining, Decimal(0))
    event = _start(user, AuditEvent.Action.DELETE, sub_key, changes={"budget_returned": (None, returned)})
    try:
        client.delete_sub_key(sub_key.id)
    except DerouterError as error:
        failure = _record_failure(event, error)
        state = get_key_state(sub_key.id) if failure.is_unknown else None
        return KeyWrite(event, failure=failure, state=state)
    audit.finish(event, Outcome.OK)
    return KeyWrite(event)
