"""Rotating a key: a new key with the same settings and the old one's remaining budget, then the
old key deleted.

Both are money moves on the old key, each under its money lock
(``dashboard.topups.key_lock_for_return``): the remaining carried over is read under the
lock, so no top-up lands on the old key between that read and the new key's creation;
its delete reads the remaining again under the lock, as what goes back to the balance.

The order never loses or doubles money: the new key's budget comes out of the available
balance while the old key still holds its remaining, and the old key's delete gives that
back. If the delete fails or its answer never comes, the rotation stays open, says so,
and ``finish`` completes it after checking derouter's list (never a blind second delete).

Both writes are ``dashboard.keywrites`` calls, as the person who rotated or the worker
(``automation.actors.WorkerActor``): each is recorded before derouter is asked.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from automation import actors, webhooks
from automation.models import Rotation
from dashboard import keywrites, topups
from derouter import client
from derouter.client import DerouterError
from ledger.models import UNSETTLED_OUTCOMES, AuditEvent, Outcome
from lib.money import to_decimal, usd
from lib.stored_text import lines, note
from work import leases


# A rotation is made in one request: one still "started" this long after was stopped mid-way.
ABANDONED_AFTER = timedelta(seconds=leases.LEASE_SECONDS)


@dataclass(frozen=True)
class RotationResult:
    rotation: Rotation
    secret: str = ""
    repeated: bool = False


def _set(rotation, **fields):
    for name, value in fields.items():
        setattr(rotation, name, value)
    rotation.save(update_fields=list(fields))


def rotate(user, sub_key, token):
    """Rotate ``sub_key`` (as just read from derouter) once for this form token."""
    try:
        with transaction.atomic():
            rotation = Rotation.objects.create(
                token=token,
                actor=user,
                actor_name=user.get_username(),
                old_sub_key_id=sub_key.id,
                old_key_id_short=sub_key.key_id,
                label=sub_key.label,
            )
    except IntegrityError:
        return RotationResult(Rotation.objects.get(token=token), repeated=True)

    try:
        with topups.key_lock_for_return(sub_key.id) as current:
            if current is None:
                _set(rotation, status=Rotation.Status.CREATE_REFUSED, message=note(gettext_noop("derouter no longer lists the key. Nothing was changed.")))
                return RotationResult(rotation)
            if _another_new_key_may_exist(rotation):
                _set(rotation, status=Rotation.Status.CREATE_REFUSED,
                     message=note(gettext_noop("Nothing was changed: an earlier rotation of this key is not finished yet; "
                                               "rotate it again once that one is done.")))
                return RotationResult(rotation)
            created = _create_new_key(rotation, user, current)
    except (topups.KeyBusy, topups.MovesUnsettled) as refusal:
        reason = getattr(refusal, "message", None) or note(
            gettext_noop("another money move on this key is under way; rotate it again in a moment"))
        _set(rotation, status=Rotation.Status.CREATE_REFUSED, message=note(gettext_noop("Nothing was changed: %(reason)s"), reason=reason))
        return RotationResult(rotation)
    if created is None:
        return RotationResult(rotation)
    try:
        finish(rotation, user)
    except DerouterError as error:
        # The new key exists and is shown now whatever happens; the rotation page finishes the rest.
        _set(rotation, message=lines(rotation.message, note(gettext_noop("The old key is not deleted yet: %(reason)s"), reason=error.message)))
    return RotationResult(rotation, secret=created.secret.reveal())


def _another_new_key_may_exist(rotation):
    """Whether another rotation of the same key made, or may have made, a new key not settled yet.

    Two new keys of one label and budget whose creates both had unknown outcomes could not
    be told apart: the second rotation waits for the first.
    """
    others = Rotation.objects.filter(old_sub_key_id=rotation.old_sub_key_id).exclude(pk=rotation.pk)
    sent = AuditEvent.objects.filter(action=AuditEvent.Action.CREATE).values("form_token")
    return others.filter(
        Q(status__in=(Rotation.Status.CREATE_UNKNOWN, Rotation.Status.CREATED, Rotation.Status.DELETE_FAILED,
                      Rotation.Status.DELETE_UNKNOWN))
        | Q(status=Rotation.Status.STARTED, token__in=sent)
    ).exists()


def _create_new_key(rotation, user, sub_key):
    """The new key with the old one's remaining (``sub_key`` read under its money lock); None when not made."""
    budget = max(sub_key.remaining, Decimal(0))
    if budget <= 0:
        _set(
            rotation,
            status=Rotation.Status.CREATE_REFUSED,
            message=note(gettext_noop("The key has no budget left to move to a new key (derouter needs a budget above $0). "
                                      "Nothing was changed: delete it and create a new key instead.")),
        )
        return None
    try:
        balance = client.get_balance()
        # Under the old key's lock: every key listed now existed before the new one, the old key among them.
        keys_before = [listed.id for listed in client.list_sub_keys()]
    except DerouterError as error:
        # Nothing was sent: the rotation ends here, and may be asked for again.
        _set(rotation, status=Rotation.Status.CREATE_REFUSED,
             message=note(gettext_noop("derouter's balance or keys could not be read (%(reason)s). Nothing was changed."),
                          reason=error.message))
        raise
    if budget > balance.available:
        _set(
            rotation,
            status=Rotation.Status.CREATE_REFUSED,
            message=note(gettext_noop("The new key needs %(budget)s while the old one still holds it, and only "
                                      "%(available)s is available. Nothing was changed."),
                         budget=usd(budget), available=usd(balance.available)),
        )
        return None
    why = note(gettext_noop("Rotation #%(number)s: replaces %(key)s."), number=rotation.pk, key=sub_key.key_id)
    try:
        write = keywrites.create_key(
            user, token=rotation.token, label=sub_key.label, budget=budget, rpm_limit=sub_key.rpm_limit,
            display_multiplier=sub_key.display_multiplier, note=why, keys_before=keys_before,
        )
    except DerouterError as error:
        # Recorded as refused by keywrites; the console's error page explains our own access.
        _set(rotation, status=Rotation.Status.CREATE_REFUSED,
             message=note(gettext_noop("derouter refused the new key: %(reason)s Nothing was changed."), reason=error.message))
        raise
    if write.is_refused:
        _set(rotation, status=Rotation.Status.CREATE_REFUSED,
             message=note(gettext_noop("derouter refused the new key: %(reason)s Nothing was changed."), reason=write.failure.message))
        return None
    if not write.is_ok:
        _set(
            rotation,
            status=Rotation.Status.CREATE_UNKNOWN,
            message=note(gettext_noop("derouter did not confirm the new key (%(reason)s). The old key is untouched; "
                                      "look in the key list for a new key with the same label before rotating again."),
                         reason=write.failure.message),
        )
        return None
    created = write.created
    multiplier_note = ""
    if write.markup_failure is not None:
        multiplier_note = note(gettext_noop("The display multiplier ×%(multiplier)s could not be copied (%(reason)s): "
                                            "set it on the new key."),
                               multiplier=f"{sub_key.display_multiplier}", reason=write.markup_failure.message)
    _set(
        rotation,
        status=Rotation.Status.CREATED,
        moved_budget=budget,
        new_sub_key_id=created.id,
        new_key_id_short=created.key_id,
        message=multiplier_note,
    )
    return created


def finish(rotation, user):
    """Delete the old key of a rotation whose new key exists (a ``keywrites`` delete); safe to call again.

    Never a blind second delete: the delete reads derouter's list under the key's money lock
    first, so a delete whose answer was lost and that happened finds the key gone.
    """
    if not rotation.needs_finishing:
        return rotation
    why = note(gettext_noop("Rotation #%(number)s: replaced by %(key)s."), number=rotation.pk, key=rotation.new_key_id_short)
    old = keywrites.KeyNamed(rotation.old_sub_key_id, rotation.label, rotation.old_key_id_short)
    write = keywrites.delete_key(user, old, note=why)
    if write.is_ok:
        return _done(rotation, user, returned=write.returned, message="")
    if write.failure.is_gone:
        return _done(rotation, user, returned=None, message=note(gettext_noop("The old key was already gone at derouter.")))
    if not write.was_sent:
        _set(rotation, message=note(gettext_noop("The old key is not deleted yet: %(reason)s"), reason=write.failure.message))
        return rotation
    status = Rotation.Status.DELETE_FAILED if write.is_refused else Rotation.Status.DELETE_UNKNOWN
    _set(rotation, status=status, message=write.failure.message)
    return rotation


def _done(rotation, user, returned, message):
    _set(rotation, status=Rotation.Status.DONE, returned=returned, message=message, finished_at=timezone.now())
    data = {
        "old_sub_key_id": rotation.old_sub_key_id,
        "old_key_id": rotation.old_key_id_short,
        "new_sub_key_id": rotation.new_sub_key_id,
        "new_key_id": rotation.new_key_id_short,
        "label": rotation.label,
        "moved_budget": rotation.moved_budget,
        "returned": returned,
        "actor": user.get_username(),
    }
    webhooks.emit("key.rotated", data, f"rotation:{rotation.pk}")
    return rotation


def _withdraw_late_key(rotation, event):
    """Delete a new key derouter made after its rotation was reported "nothing was changed" (a late write).

    Nobody was handed that key and the customer still uses the old one, so deleting the old key
    would cut the customer off: the late key goes instead, its budget back to the balance, and
    "nothing was changed" stays true. The rotation keeps the late key's id once it is gone.
    """
    late = keywrites.KeyNamed(event.sub_key_id, rotation.label, event.key_id_short)
    why = note(gettext_noop("Rotation #%(number)s: its new key was made late."), number=rotation.pk)
    write = keywrites.delete_key(_actor_of(rotation), late, note=why)
    if not (write.is_ok or write.failure.is_gone):
        return note(gettext_noop("rotation #%(number)s: the new key made late is not deleted yet"), number=rotation.pk)
    _set(rotation, new_sub_key_id=event.sub_key_id, new_key_id_short=event.key_id_short,
         message=note(gettext_noop("derouter made the new key after the rotation was reported as not done; nobody was given it, so "
                                   "it was deleted and its budget returned to the balance. The old key stays in use.")))
    return note(gettext_noop("rotation #%(number)s: the new key made late was deleted; the old key stays"), number=rotation.pk)


def _actor_of(rotation):
    return rotation.actor or actors.WorkerActor(rotation.actor_name)


def settle_open():
    """Move every open rotation on (for the worker's pass); return what was done.

    A rotation whose new key's create had an unknown outcome follows that create once it is
    settled (``dashboard.keywrites`` settles it from derouter's list): made after all, the
    rotation goes on to delete the old key; not made, nothing changed. A create settled "not
    applied" and re-settled as applied later (a late write) made a key nobody was given: it is deleted. A rotation whose new
    key exists and whose old key is not deleted yet is finished (never a blind second delete).

    A rotation still "started" past ABANDONED_AFTER had its request stopped mid-way (a killed
    process): its claim ends there. The create is recorded before it is sent, so with no record
    nothing was sent; with one, the rotation follows it as above.
    """
    done = []
    abandoned = Q(status=Rotation.Status.STARTED, created_at__lte=timezone.now() - ABANDONED_AFTER)
    # A new key whose create was settled "not applied", then found made after all (a late write).
    made_late = Q(status=Rotation.Status.CREATE_REFUSED, new_sub_key_id="", token__in=AuditEvent.objects.filter(
        action=AuditEvent.Action.CREATE, outcome=Outcome.OK).values("form_token"))
    for rotation in Rotation.objects.filter(Q(status=Rotation.Status.CREATE_UNKNOWN) | abandoned | made_late):
        event = AuditEvent.objects.filter(form_token=rotation.token).first()
        if event is None and rotation.status == Rotation.Status.STARTED:
            _set(rotation, status=Rotation.Status.CREATE_REFUSED,
                 message=note(gettext_noop("The rotation stopped before the new key was asked for: nothing was changed.")))
            done.append(note(gettext_noop("rotation #%(number)s: stopped before anything was sent"), number=rotation.pk))
            continue
        if event is None or event.outcome in UNSETTLED_OUTCOMES:
            continue
        if event.outcome != Outcome.OK:
            _set(rotation, status=Rotation.Status.CREATE_REFUSED,
                 message=lines(note(gettext_noop("derouter did not make the new key: nothing was changed.")), event.message))
            done.append(note(gettext_noop("rotation #%(number)s: the new key was not made"), number=rotation.pk))
            continue
        if event.sub_key_id == rotation.old_sub_key_id:
            # The create was matched to the old key itself (same label and budget, made moments
            # before): which key is new cannot be told, so nothing is deleted.
            continue
        if rotation.status == Rotation.Status.CREATE_REFUSED:
            done.append(_withdraw_late_key(rotation, event))
            continue
        moved = to_decimal((event.changes.get("budget") or [None, None])[1])
        _set(rotation, status=Rotation.Status.CREATED, new_sub_key_id=event.sub_key_id,
             new_key_id_short=event.key_id_short, moved_budget=moved,
             message=note(gettext_noop("The new key was made after all (derouter lists it).")))
        done.append(note(gettext_noop("rotation #%(number)s: the new key was made after all"), number=rotation.pk))
    for rotation in Rotation.objects.filter(
        status__in=(Rotation.Status.CREATED, Rotation.Status.DELETE_FAILED, Rotation.Status.DELETE_UNKNOWN)
    ):
        finish(rotation, _actor_of(rotation))
        if rotation.status == Rotation.Status.DONE:
            done.append(note(gettext_noop("rotation #%(number)s: the old key is deleted"), number=rotation.pk))
    return done
