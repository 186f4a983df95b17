"""Create, edit and delete Client Keys: the only road to a key write upstream, always ending with a known record.

The console's pages and the worker (rotation, expiry) all write keys through here, as
a person or as a worker actor (``automation.actors.WorkerActor``). Every write records
its audit event ("pending") before derouter is asked, makes its upstream call once
(never retried), settles the event with the outcome the one rule in ``ledger.outcomes``
gives (ok, refused, unknown), and returns a ``KeyWrite`` the caller only reads. When the outcome is
unknown, the result carries derouter's state as it reports it now, so the page
can show what is true instead of guessing, and ``resolve_unknown_key_writes``
later settles such a write from what derouter lists (the key list and key page
call it; ``resolve_unsettled_writes`` does it for everything, for a worker task).
"""

import functools
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from dashboard import topups
from dashboard.upstream import KeyState, get_key_state
from derouter import client
from derouter import conventions as upstream_conventions
from derouter.client import DerouterError
from ledger import audit
from ledger.formtokens import check_form_token
from ledger.models import UNSETTLED_OUTCOMES, AuditEvent, Outcome, TopUp
from ledger.outcomes import ErrorOutcome, outcome_of_write_error
from lib.money import to_decimal
from lib import stored_text
from lib.sql import placeholders
from mirror import snapshot as mirror_snapshot
from mirror import sync as mirror_sync

# How the audit trail names a field derouter did not keep.
FIELD_WORDS = {"label": gettext_noop("label"), "rpm_limit": gettext_noop("rpm limit"),
               "display_multiplier": gettext_noop("display multiplier")}

# After a create whose outcome is unknown, the newest keys are shown so a person can look for it.
RECENT_KEYS_AFTER_UNKNOWN = 5
# The audited actions that write a key (the others move money, reveal, change settings).
KEY_WRITE_ACTIONS = (AuditEvent.Action.CREATE, AuditEvent.Action.EDIT, AuditEvent.Action.DELETE)


@dataclass(frozen=True)
class KeyWrite:
    """How a create, edit or delete ended.

    ``event`` is its audit event. ``failure`` says why when it did not end "ok".
    ``state`` is derouter's state read again after an unknown outcome. ``created``
    is the new key (its secret shown once); ``markup`` the second write that set its
    multiplier, when derouter did not keep it at creation. ``repeated`` is True when the
    form had been submitted before: ``event`` is then that first attempt and nothing was sent.
    """

    event: AuditEvent
    failure: ErrorOutcome | None = None
    state: KeyState | None = None
    created: client.CreatedSubKey | None = None
    repeated: bool = False
    markup: "KeyWrite | None" = None
    returned: Decimal | None = None

    @property
    def not_applied(self):
        """{field: (asked, kept)} of what derouter answered as done but did not keep (read back), this write's and its markup's."""
        kept = {name: tuple(values) for name, values in (self.event.not_applied or {}).items()}
        if self.markup is not None:
            kept.update(self.markup.not_applied)
        return kept

    @property
    def markup_failure(self):
        """Why the new key's multiplier is not what was asked for, or None."""
        return self.markup.failure if self.markup is not None else None

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


@dataclass(frozen=True)
class KeyNamed:
    """A key known by what a record keeps of it (its id, label and short key): enough to delete it by."""

    id: str
    label: str = ""
    key_id: str = ""


def _after_note(lead, message):
    """The event's note (what asked for the write) ahead of a message, as one stored text.

    Two stored messages (notes) joined as text would read as neither: kept as lines, each read in the reader's language.
    """
    parts = [part for part in (lead, message) if part]
    return stored_text.lines(*parts) if len(parts) > 1 else (parts[0] if parts else "")


def _record_failure(event, error):
    """Settle the event from an upstream error; re-raise the errors the console's error page explains."""
    failure = outcome_of_write_error(error)
    audit.finish(event, failure.outcome, message=_after_note(event.message, failure.message))
    if failure.needs_error_page:
        raise error
    return failure


def _send(event, call, sub_key_id=None):
    """Make the upstream call once: (its answer, None), or (None, the KeyWrite of how it failed).

    A failure settles the event by the one rule; when its outcome is unknown,
    derouter's keys are read again so the page can show what is true now, and the
    worker refreshes the key snapshot. The event is dated when the call goes out: settling
    counts WRITE_SETTLE_SECONDS from then, and a delete may have waited for the key's usage
    sync and its money lock since the event was written.
    """
    event.created_at = timezone.now()
    AuditEvent.objects.filter(pk=event.pk).update(created_at=event.created_at)
    try:
        return call(), None
    except DerouterError as error:
        failure = _record_failure(event, error)
        state = get_key_state(sub_key_id) if failure.is_unknown else None
        if failure.is_unknown:
            mirror_snapshot.record_write_answer(None)
        return None, KeyWrite(event, failure=failure, state=state)


def _start(user, action, sub_key=None, **fields):
    """The audit event of an attempt, written "pending" before the upstream is asked."""
    return audit.record(user, action, Outcome.PENDING, sub_key=sub_key, **fields)


def create_key(user, *, token, label, budget, rpm_limit, display_multiplier=Decimal(1), note="", keys_before=()):
    """POST a new key, with its markup, once per form token; a token seen before returns its first attempt.

    The markup goes in the creating POST where derouter keeps it there (its conventions);
    elsewhere, or when derouter did not keep it after all, it is set by a second write, an
    edit recorded as such (``markup``).
    ``note`` leads the audit event's message (what asked for the key, e.g. a rotation).
    ``keys_before``: the ids of the keys derouter listed just before (a rotation reads them under
    the old key's lock); recorded with the event, so settling an unknown outcome never takes one
    of them for the new key.
    """
    check_form_token(token, AuditEvent.Action.CREATE)
    conventions = upstream_conventions.current()
    changes = {"label": ("", label), "budget": (None, budget)}
    if conventions.limits_settable:
        changes["rpm_limit"] = (None, rpm_limit)
    else:
        rpm_limit = None  # fixed at derouter: not asked for, so not "not applied" either
    if display_multiplier != 1:
        changes["display_multiplier"] = (None, display_multiplier)
    try:
        with transaction.atomic():
            event = _start(user, AuditEvent.Action.CREATE, label=label, changes=changes, form_token=token, message=note,
                           keys_before=keys_before)
    except IntegrityError:
        # The same form again (or in a race): show the first attempt, if it was a create.
        check_form_token(token, AuditEvent.Action.CREATE)
        return KeyWrite(AuditEvent.objects.get(form_token=token), repeated=True)
    # Where derouter keeps no markup given at creation, the key is made at x1 and marked up by the second
    # write: a markup sent anyway would be dropped, and where amounts are the customer's, the budget sent
    # at the markup would then be read at x1 and cost the customer's amount (the client refuses that).
    at_creation = display_multiplier != 1 and conventions.multiplier_at_creation
    created, failed = _send(
        event,
        lambda: client.create_sub_key(
            budget, label=label, rpm_limit=rpm_limit, display_multiplier=display_multiplier if at_creation else None,
        ),
    )
    if failed:
        return failed
    kept = _read_back(created.id) or created
    # A markup derouter did not keep at creation is set by a second write, where it keeps one after.
    set_later = kept.display_multiplier != display_multiplier and conventions.multiplier_after_creation
    asked = {"label": label, "rpm_limit": rpm_limit, **({} if set_later else {"display_multiplier": display_multiplier})}
    not_applied = _not_kept(asked, kept)
    audit.finish(event, Outcome.OK, sub_key_id=created.id, key_id_short=created.key_id,
                 message=_with_not_applied(note, not_applied), not_applied=not_applied)
    mirror_snapshot.record_created_key(created)
    markup = _set_markup(user, created, display_multiplier) if set_later else None
    return KeyWrite(event, created=created, markup=markup)


def _read_back(sub_key_id):
    """The key as derouter lists it right after our write, or None when it could not say (then its answer stands)."""
    state = get_key_state(sub_key_id)
    return state.key if state.reachable else None


def _not_kept(asked, kept):
    """{field: (asked, kept)} for each field asked for (None: not asked) that the key read back does not hold."""
    return {
        name: (value, getattr(kept, name))
        for name, value in asked.items()
        if value is not None and getattr(kept, name) != value
    }


def _with_not_applied(message, not_applied):
    """The event's message, followed by what derouter did not keep (the audit trail's plain account of it)."""
    if not not_applied:
        return message
    # The values are the key's own (a label as typed): they read as they are.
    not_kept = [
        stored_text.note(gettext_noop("Not applied: %(field)s (asked %(asked)s, derouter kept %(kept)s)."),
                         field=stored_text.note(FIELD_WORDS.get(name, name)), asked=asked, kept=kept)
        for name, (asked, kept) in not_applied.items()
    ]
    return stored_text.lines(message, *not_kept)


def _set_markup(user, created, multiplier):
    """The new key's multiplier as a second write (derouter made the key without it): an edit of the key as listed."""
    listed = get_key_state(created.id).key
    if listed is None:
        message = stored_text.note(gettext_noop("derouter did not list the new key yet"))
        event = _start(user, AuditEvent.Action.EDIT, sub_key_id=created.id, label=created.label,
                       key_id_short=created.key_id, changes={"display_multiplier": (created.display_multiplier, multiplier)})
        audit.finish(event, Outcome.REFUSED, message=stored_text.note(gettext_noop("Not sent: %(reason)s."), reason=message))
        return KeyWrite(event, failure=ErrorOutcome(Outcome.REFUSED, message, was_sent=False))
    return edit_key(user, listed, {"display_multiplier": (listed.display_multiplier, multiplier)})


def edit_key(user, sub_key, changes):
    """PUT the changed fields ({name: (before, after)}) of a key.

    A new multiplier is sent only once the key's usage so far is mirrored, so every
    earlier request keeps the multiplier it was made under.
    """
    event = _start(user, AuditEvent.Action.EDIT, sub_key, changes=changes)
    if "display_multiplier" in changes:
        problem = mirror_sync.mirror_usage_before_write(sub_key)
        if problem:
            message = stored_text.note(
                gettext_noop("The change was not sent: %(problem)s; requests made before a new multiplier must keep the old one."),
                problem=problem,
            )
            audit.finish(event, Outcome.REFUSED, message=message)
            return KeyWrite(event, failure=ErrorOutcome(Outcome.REFUSED, message, was_sent=False))
    updates = {name: after for name, (_, after) in changes.items()}
    answer, failed = _send(event, lambda: client.update_sub_key(sub_key.id, **updates), sub_key.id)
    if failed:
        return failed
    # What derouter answered is not proof it kept it: read the key back and name what it did not keep.
    kept = _read_back(sub_key.id) or answer
    not_applied = _not_kept(updates, kept) if kept is not None else {}
    audit.finish(event, Outcome.OK, message=_with_not_applied("", not_applied), not_applied=not_applied)
    mirror_snapshot.record_write_answer(kept)
    return KeyWrite(event)


def _refused_unsent(user, sub_key, message, status=None, note=""):
    """A delete that was never sent: recorded as refused, with derouter's status when it told us why (404: gone)."""
    event = _start(user, AuditEvent.Action.DELETE, sub_key)
    message = _after_note(note, message)
    audit.finish(event, Outcome.REFUSED, message=message)
    return KeyWrite(event, failure=ErrorOutcome(Outcome.REFUSED, message, status=status, was_sent=False))


def delete_key(user, sub_key, note=""):
    """DELETE a key; its unspent budget returns to the available balance.

    A money move (``topups.key_lock_for_return``): under the key's lock the key is read
    again, so the budget recorded as returned is what it held when the DELETE went out.
    ``note`` leads the audit event's message (what asked for the delete: a rotation, an
    end date). A key derouter no longer lists is not sent a delete: the result is refused
    with status 404 (``failure.is_gone``), and the snapshot marks the key deleted.
    """
    with ExitStack() as stack:
        try:
            current = stack.enter_context(topups.key_lock_for_return(sub_key.id))
        except topups.KeyBusy:
            return _refused_unsent(user, sub_key, stored_text.note(
                gettext_noop("Not sent: another money move on this key is under way; try again in a moment.")), note=note)
        except topups.MovesUnsettled as refusal:
            return _refused_unsent(user, sub_key, stored_text.note(gettext_noop("Not sent: %(problem)s"), problem=refusal.message), note=note)
        except DerouterError as error:
            if outcome_of_write_error(error).needs_error_page:
                raise
            return _refused_unsent(user, sub_key, stored_text.note(
                gettext_noop("Not sent: derouter's key list could not be read first (%(error)s)."), error=error.message), note=note)
        if current is None:
            mirror_snapshot.record_deleted_key(sub_key.id)
            return _refused_unsent(user, sub_key, stored_text.note(gettext_noop("Not sent: derouter no longer lists the key.")), status=404, note=note)
        returned = max(current.remaining, Decimal(0))
        # The return is a money move: its ledger line and the delete's event, one token, both written before the DELETE.
        token = uuid.uuid4()
        with transaction.atomic():
            line = topups.record_return(user, current, token, note=note)
            event = _start(user, AuditEvent.Action.DELETE, current, changes={"budget_returned": (None, returned)},
                           message=note, form_token=token)
        # derouter stops listing a deleted key's usage: mirror what is left while it still can (best effort).
        mirror_sync.mirror_usage_before_write(current)
        refunded, failed = _send(
            event, lambda: client.delete_sub_key(current.id, key_multiplier=current.display_multiplier), current.id
        )
        if failed:
            if failed.failure.is_gone:
                mirror_snapshot.record_deleted_key(current.id)
            return failed
        audit.finish(event, Outcome.OK, message=note)
        topups.set_returned(line, refunded, current.display_multiplier)
        if refunded is not None:
            # derouter's own figure: usage charged between our read and the delete is not returned.
            returned = refunded
        mirror_snapshot.record_deleted_key(current.id)
        return KeyWrite(event, returned=returned)


# ---------------------------------------------------------------- resolving pending and unknown key writes

# How far a new key's createdAt may sit before its audit event's time (clocks differ a little).
CREATE_CLOCK_SKEW = timedelta(seconds=30)
EDITABLE_FIELDS = ("label", "rpm_limit", "display_multiplier")


def _is_settled(event, now):
    """True once the event's request can no longer be running, so "not seen" means "not applied"."""
    return (now - event.created_at).total_seconds() >= settings.WRITE_SETTLE_SECONDS


def _settle(event, outcome, message, **fields):
    audit.finish(event, outcome, message=message, inferred=True, **fields)


def _settle_if_known(event, applied, now, confirmed, not_applied, **fields):
    """Settle as ok when derouter shows the write, as not applied once it can no longer land; True if settled."""
    if applied:
        _settle(event, Outcome.OK, confirmed, **fields)
        return True
    if _is_settled(event, now):
        _settle(event, Outcome.REFUSED, not_applied)
        return True
    return False


def _same_value(name, recorded, current):
    """Whether a value recorded in an audit event (money as a string) equals the key's value now."""
    if name == "display_multiplier":
        return to_decimal(recorded) == current
    return recorded == current


def _resolve_edit(event, current_key, later_fields, now, checked):
    """An edit happened when every field it set (and no later write touched) has its new value now."""
    changes = event.changes if isinstance(event.changes, dict) else {}
    fields = [name for name in changes if name in EDITABLE_FIELDS and name not in later_fields]
    if current_key is None or not fields:
        if event.outcome == Outcome.PENDING and _is_settled(event, now):
            _settle(event, Outcome.UNKNOWN, stored_text.note(
                gettext_noop("Cannot be checked: the key is gone or later writes set the same fields %(checked)s."), checked=checked))
            return True
        return False
    return _settle_if_known(
        event,
        all(_same_value(name, changes[name][1], getattr(current_key, name)) for name in fields),
        now,
        stored_text.note(gettext_noop("Confirmed from the key's settings %(checked)s."), checked=checked),
        stored_text.note(gettext_noop("Not applied: the key's settings are unchanged %(checked)s."), checked=checked),
    )


def _resolve_delete(event, current_key, now, checked):
    """A delete happened when derouter no longer lists the key."""
    return _settle_if_known(
        event,
        current_key is None,
        now,
        stored_text.note(gettext_noop("Confirmed: derouter no longer lists the key %(checked)s."), checked=checked),
        stored_text.note(gettext_noop("Not applied: derouter still lists the key %(checked)s."), checked=checked),
    )


def _new_key_for(event, sub_keys, claimed_ids):
    """The key a create made: one with its label and budget that appeared after it, not claimed by another create.

    A key derouter listed before the create was sent (``keys_before``) is never it.
    """
    changes = event.changes if isinstance(event.changes, dict) else {}
    budget = to_decimal((changes.get("budget") or [None, None])[1])
    existed = set(event.keys_before or ())
    return next(
        (
            sub_key
            for sub_key in sub_keys
            if sub_key.id not in claimed_ids
            and sub_key.id not in existed
            and sub_key.label == event.key_label
            and sub_key.budget == budget
            and sub_key.created_at is not None
            and sub_key.created_at >= event.created_at - CREATE_CLOCK_SKEW
        ),
        None,
    )


def _resolve_create(event, sub_keys, claimed_ids, now, checked):
    """A create happened when derouter lists the key it made (``_new_key_for``)."""
    created = _new_key_for(event, sub_keys, claimed_ids)
    if created is not None:
        claimed_ids.add(created.id)
    return _settle_if_known(
        event,
        created is not None,
        now,
        stored_text.note(gettext_noop("Confirmed: derouter lists the new key %(checked)s."), checked=checked),
        stored_text.note(gettext_noop("Not applied: no such key appeared at derouter %(checked)s."), checked=checked),
        **({"sub_key_id": created.id, "key_id_short": created.key_id} if created else {}),
    )


def _late_creates(now):
    """Creates settled "not applied" from the key list within LATE_WRITE_HORIZON_SECONDS: derouter may make them yet."""
    horizon = now - timedelta(seconds=settings.LATE_WRITE_HORIZON_SECONDS)
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.CREATE, outcome=Outcome.REFUSED, outcome_inferred=True, sub_key_id="",
        created_at__gte=horizon,
    ).order_by("created_at", "id")


def _resolve_late_create(event, sub_keys, claimed_ids, checked):
    """A create settled "not applied" whose key derouter lists now: re-settled as applied, and an audit event says so.

    Left as it was, the key would be money the console spent with no record of spending it.
    """
    created = _new_key_for(event, sub_keys, claimed_ids)
    if created is None:
        return False
    claimed_ids.add(created.id)
    _settle(event, Outcome.OK, stored_text.note(gettext_noop("Confirmed: derouter lists the new key %(checked)s."), checked=checked),
            sub_key_id=created.id, key_id_short=created.key_id)
    # No budget in its changes: the reconciliation counts the key's budget once, from the create itself.
    audit.record(
        None,
        AuditEvent.Action.CREATE,
        Outcome.OK,
        sub_key_id=created.id,
        label=event.key_label,
        key_id_short=created.key_id,
        changes=audit.LATE_WRITE_CHANGES,
        message=stored_text.note(gettext_noop("Late write: the key asked for on %(when)s UTC was recorded as not applied, "
                                              "and derouter made it later. Re-settled as applied %(checked)s."),
                                 when=f"{event.created_at:%Y-%m-%d %H:%M}", checked=checked),
        actor_name=event.actor_name,
    )
    return True


def resolve_unknown_key_writes(sub_keys, read_at, sub_key_id=None, late_writes=False):
    """Settle pending and unknown creates, edits and deletes from derouter's key list, read from ``read_at`` on.

    A write counts as unable to land only if it went out WRITE_SETTLE_SECONDS before the read
    began: a slow read (or one answered after a wait) shows derouter as it was when it started.

    With ``sub_key_id``, only that key's edits and deletes (the key page); without,
    every key's, and the creates too (the key list, or a periodic worker task).
    Newest first, so an edit is judged only on fields no later write touched.
    With ``late_writes`` (the worker's run), creates settled "not applied" within
    LATE_WRITE_HORIZON_SECONDS whose key derouter lists now are re-settled as applied, after
    the open creates took their keys. Returns the events settled.
    """
    events = AuditEvent.objects.filter(outcome__in=UNSETTLED_OUTCOMES).order_by("-created_at", "-id")
    if sub_key_id is not None:
        events = events.filter(sub_key_id=str(sub_key_id), action__in=(AuditEvent.Action.EDIT, AuditEvent.Action.DELETE))
    else:
        events = events.filter(action__in=KEY_WRITE_ACTIONS)
    events = list(events)
    late = list(_late_creates(read_at)) if late_writes and sub_key_id is None else []
    if not events and not late:
        return []
    now = read_at
    checked = stored_text.note(gettext_noop("(checked %(when)s UTC)"), when=f"{now:%Y-%m-%d %H:%M}")
    by_id = {sub_key.id: sub_key for sub_key in sub_keys}
    claimed_ids = set(
        AuditEvent.objects.filter(action=AuditEvent.Action.CREATE).exclude(sub_key_id="").values_list("sub_key_id", flat=True)
    )
    later_fields = {}
    settled = []
    for event in events:
        touched = later_fields.setdefault(event.sub_key_id, set())
        if event.action == AuditEvent.Action.CREATE:
            done = _resolve_create(event, sub_keys, claimed_ids, now, checked)
        elif event.action == AuditEvent.Action.DELETE:
            done = _resolve_delete(event, by_id.get(event.sub_key_id), now, checked)
        else:
            done = _resolve_edit(event, by_id.get(event.sub_key_id), touched, now, checked)
            touched.update(event.changes if isinstance(event.changes, dict) else ())
        if done:
            settled.append(event)
    settled += [event for event in late if _resolve_late_create(event, sub_keys, claimed_ids, checked)]
    return settled


@functools.cache
def _open_writes_statement():
    """Whether any key write (create, edit, delete) or move is pending or unknown, as one plain statement.

    The key list asks it on every view: Django took longer to build its two queries than the
    database to run them. The moves are those ``topups.has_unsettled_moves()`` looks for.
    """
    events = connection.ops.quote_name(AuditEvent._meta.db_table)
    moves = connection.ops.quote_name(TopUp._meta.db_table)
    unsettled, actions = placeholders(len(UNSETTLED_OUTCOMES)), placeholders(len(KEY_WRITE_ACTIONS))
    return (
        f"SELECT EXISTS(SELECT 1 FROM {events} WHERE outcome IN ({unsettled}) AND action IN ({actions}))"
        f" OR EXISTS(SELECT 1 FROM {moves} WHERE outcome IN ({unsettled}) AND kind = %s)"
    )


def _has_open_writes():
    unsettled = [outcome.value for outcome in UNSETTLED_OUTCOMES]
    actions = [action.value for action in KEY_WRITE_ACTIONS]
    with connection.cursor() as cursor:
        cursor.execute(_open_writes_statement(), [*unsettled, *actions, *unsettled, TopUp.Kind.MOVE.value])
        return bool(cursor.fetchone()[0])


def has_unsettled_writes(late_writes=False):
    """Whether any key write or move is pending or unknown; with ``late_writes``, or could still land late (the worker looks)."""
    if not late_writes:
        return _has_open_writes()
    return (
        AuditEvent.objects.filter(outcome__in=UNSETTLED_OUTCOMES, action__in=KEY_WRITE_ACTIONS).exists()
        or topups.has_unsettled_moves(late_writes)
        or _late_creates(timezone.now()).exists()
    )


def resolve_unsettled_writes(late_writes=False):
    """Settle every pending or unknown key write and top-up with one upstream call: for a periodic worker task.

    With nothing unsettled it asks derouter nothing. The keys with open top-ups are
    locked first (``topups.settling_locks``), so the list is read with no move in
    flight on them. ``late_writes`` (the worker's run) also looks for top-ups settled
    "not applied" that derouter applied later. Raises DerouterError when derouter
    cannot list the keys (the next run tries again).
    """
    if not has_unsettled_writes(late_writes):
        return []
    with topups.settling_locks(late_writes) as settle_topups_from:
        read_at = timezone.now()
        sub_keys = client.list_sub_keys()
        return resolve_unknown_key_writes(sub_keys, read_at, late_writes=late_writes) + settle_topups_from(sub_keys, read_at)

