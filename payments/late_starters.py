"""Starter codes whose earlier attempt's key derouter made late: one key per code, and the code says which.

A starter code whose create was settled "not applied" is given back to the customer. When
derouter makes that key later all the same (a late write, re-settled as applied by
``dashboard.keywrites``), the key exists with the code's worth. If the code is still unused,
that key is its redemption: the code is marked redeemed by it (the customer could otherwise
make a second key), and the provider reveals its secret in the console, since nobody was shown
it. If the code went on without it (redeemed again by another key, or revoked), nobody was
given the late key and the code's worth is spent or withdrawn elsewhere: the late key is
deleted, its budget back to the balance. Either way an audit note says so.
"""

import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from automation.actors import WorkerActor
from dashboard import keywrites
from dashboard.upstream import get_sub_key_now
from derouter.client import DerouterError
from ledger import audit
from ledger.models import AuditEvent, Outcome
from lib import stored_text
from payments import crediting
from payments.models import CodeBatch, RedemptionCode

State = RedemptionCode.State


def starter_token(code, attempt):
    """The create's form token of one attempt of a starter code: the same in every process that tries it."""
    return crediting.token_for("starter", code.pk, attempt)


def _window_start():
    """How far back a starter code's earlier create may have been made late and not acted on yet.

    A create is re-settled as applied within LATE_WRITE_HORIZON_SECONDS of being sent, which was
    before its code was given back, redeemed again or revoked; a pass acts on it after that.
    """
    return timezone.now() - datetime.timedelta(seconds=2 * settings.LATE_WRITE_HORIZON_SECONDS)


def _starters_given_back(since):
    """Starter codes given back at least once, whose earlier attempt's key may have been made late."""
    return RedemptionCode.objects.filter(batch__kind=CodeBatch.Kind.STARTER, attempts__gt=0).filter(
        Q(state=State.UNUSED) | Q(state=State.REDEEMED, redeemed_at__gte=since) | Q(state=State.REVOKED, revoked_at__gte=since)
    )


def has_starters_given_back():
    return _starters_given_back(_window_start()).exists()


def _late_creates_of(code, since):
    """The creates of the code's earlier attempts that derouter made after all, but for the code's own key."""
    tokens = [starter_token(code, number) for number in range(code.attempts)]
    return (
        AuditEvent.objects.filter(form_token__in=tokens, action=AuditEvent.Action.CREATE, outcome=Outcome.OK, created_at__gte=since)
        .exclude(sub_key_id="")
        .exclude(sub_key_id=code.sub_key_id)
        .order_by("created_at", "id")
    )


def _record_note(code, event, msgid):
    """The audit trail's account of what the late key became: a note about the late write, not a write (no webhook)."""
    audit.record(
        None, AuditEvent.Action.CREATE, Outcome.OK, sub_key_id=event.sub_key_id, label=event.key_label,
        key_id_short=event.key_id_short, changes=audit.LATE_WRITE_CHANGES, actor_name=event.actor_name,
        message=stored_text.note(msgid, hint=code.hint, number=code.batch_id, when=f"{event.created_at:%Y-%m-%d %H:%M}"),
    )


def _redeem_by_late_key(code, event):
    """The unused code is redeemed by its late key (its secret never shown: the provider reveals it)."""
    with transaction.atomic():
        done = RedemptionCode.objects.filter(pk=code.pk, state=State.UNUSED, attempts=code.attempts).update(
            state=State.REDEEMED, sub_key_id=event.sub_key_id, key_label=event.key_label, key_id_short=event.key_id_short,
            claimed_at=event.created_at, redeemed_at=timezone.now(), amount_usd=code.batch.amount,
            message=stored_text.note(gettext_noop(
                "Its key was made after the code had been given back: the secret was not shown; reveal it in the console.")),
        )
        if done:
            _record_note(code, event, gettext_noop(
                "Late write: starter code …%(hint)s (batch #%(number)s) was given back when its key, asked for on "
                "%(when)s UTC, was recorded as not made; derouter made it later. The code is marked redeemed by this key."))
    return bool(done)


def _withdraw_late_key(code, event):
    """Delete the late key of a code that went on without it; True once its delete went out."""
    if AuditEvent.objects.filter(action=AuditEvent.Action.DELETE, sub_key_id=event.sub_key_id).exclude(
            outcome=Outcome.REFUSED).exists():
        return False  # deleted already, or its delete is being settled
    try:
        if get_sub_key_now(event.sub_key_id) is None:
            return False  # gone already: nothing to return
        write = keywrites.delete_key(
            WorkerActor(event.actor_name), keywrites.KeyNamed(event.sub_key_id, event.key_label, event.key_id_short)
        )
    except DerouterError:
        return False  # derouter could not be asked: the next pass tries again
    if not (write.is_ok or write.is_unknown):
        return False
    _record_note(code, event, gettext_noop(
        "Late write: starter code …%(hint)s (batch #%(number)s) was given back when its key, asked for on %(when)s UTC, "
        "was recorded as not made; derouter made it later, after the code had been redeemed again or revoked. Nobody "
        "was given this key, so it is deleted and its budget returned to the balance."))
    return True


def settle_late_starter_keys():
    """Act on every starter code's earlier key made late (see the module's docstring); return the codes acted on."""
    since = _window_start()
    settled = []
    for code in _starters_given_back(since).select_related("batch"):
        for event in _late_creates_of(code, since):
            code.refresh_from_db()
            if code.state == State.UNUSED:
                acted = _redeem_by_late_key(code, event)
            elif code.state in (State.REDEEMED, State.REVOKED) and code.sub_key_id != event.sub_key_id:
                acted = _withdraw_late_key(code, event)
            else:
                acted = False  # being redeemed again: that attempt's outcome decides, on a later pass
            if acted and code not in settled:
                settled.append(code)
    return settled
