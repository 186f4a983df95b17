"""Redemption codes: batches made by owners (or staff they allow), redeemed once by a customer's key.

Exactly once: a redemption first claims the code with one conditional UPDATE (unused and
not expired -> redeeming, for this key), so of any number of simultaneous submissions one
wins and the rest are told the code is being redeemed or was used. The winner tops the key
up through the money service with a token of the code's attempt. Confirmed: the code is
redeemed. Refused by derouter (or by the money service before asking): the code is given
back (unused, next attempt's token). Unknown: the code stays held; ``settle_held_codes``
finishes it once the ledger row is settled, and gives back a claim whose process died
before it wrote its ledger row.
"""

import datetime
import hashlib
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.utils.translation import gettext_noop

from accounts.roles import is_owner
from automation import webhooks
from automation.actors import WorkerActor
from dashboard import keywrites
from derouter.client import DerouterError
from ledger import audit
from ledger.models import AuditEvent, Outcome, TopUp
from lib.money import exact_usd
from lib import stored_text
from payments import crediting, late_starters
from payments.models import CodeBatch, MoneyInSettings, RedemptionCode

# No 0/O, 1/I/L: nothing a person could read two ways.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
GROUPS = 5
GROUP_LENGTH = 5
HINT_LENGTH = 4
MAX_BATCH_SIZE = 1000
State = RedemptionCode.State


class RedemptionRefused(Exception):
    """The code cannot be redeemed now; ``message`` says why, for the customer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Redemption:
    """A redemption that went through: ``held`` while derouter's answer is not known yet."""

    code: RedemptionCode
    shown_amount: Decimal
    held: bool = False


def generate_code():
    """25 characters of an unambiguous alphabet (about 124 bits), in groups of five."""
    text = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LENGTH))
    return "-".join(text[start:start + GROUP_LENGTH] for start in range(0, len(text), GROUP_LENGTH))


def normalize(raw):
    """A typed code as stored: upper case, without spaces or dashes."""
    return "".join(character for character in str(raw).upper() if character not in " -\t\r\n")


def digest_of(raw):
    return hashlib.sha256(normalize(raw).encode("utf-8", "surrogatepass")).hexdigest()


def can_manage_codes(user):
    """Owners always; staff when an owner allowed it."""
    return is_owner(user) or MoneyInSettings.load().staff_may_manage_codes


def create_batch(user, count, amount, unit, expires_at=None, note="", kind=CodeBatch.Kind.TOPUP):
    """Make ``count`` codes; return (batch, their texts). The texts exist only in this answer.

    A starter batch's codes each create a new key with ``amount`` USD of budget.
    """
    texts = [generate_code() for _ in range(count)]
    with transaction.atomic():
        batch = CodeBatch.objects.create(
            created_by=user, created_by_name=user.get_username(), note=note, amount=amount, unit=unit,
            count=count, expires_at=expires_at, kind=kind,
        )
        RedemptionCode.objects.bulk_create(
            RedemptionCode(batch=batch, digest=digest_of(text), hint=normalize(text)[-HINT_LENGTH:]) for text in texts
        )
        audit.record(
            user, AuditEvent.Action.CODES_CREATE, Outcome.OK,
            changes={"codes": (None, count), "kind": (None, stored_text.note_of_label(batch.get_kind_display())),
                     "worth": (None, _worth_note(batch)), "expires": (None, expires_at.isoformat() if expires_at else "never")},
            message=(stored_text.note(gettext_noop("Batch #%(number)s: %(note)s"), number=batch.pk, note=note) if note
                     else stored_text.note(gettext_noop("Batch #%(number)s"), number=batch.pk)),
        )
    return batch, texts


def _worth_note(batch):
    """The worth as the audit trail keeps it: read in each reader's language."""
    if batch.unit == CodeBatch.Unit.USD:
        return exact_usd(batch.amount)
    return stored_text.note(gettext_noop("%(amount)s in the customer's units"), amount=f"{batch.amount.normalize():f}")


def describe_worth(batch):
    if batch.unit == CodeBatch.Unit.USD:
        return exact_usd(batch.amount)
    return gettext_lazy("%(amount)s in the customer's units") % {"amount": f"{batch.amount.normalize():f}"}


def revoke(user, batch, code=None):
    """Revoke one unused code of the batch, or all of them; return how many were revoked."""
    now = timezone.now()
    codes = RedemptionCode.objects.filter(batch=batch, state=State.UNUSED)
    if code is not None:
        codes = codes.filter(pk=code.pk)
    with transaction.atomic():
        revoked = codes.update(state=State.REVOKED, revoked_at=now, revoked_by_name=user.get_username())
        if revoked:
            audit.record(
                user, AuditEvent.Action.CODES_REVOKE, Outcome.OK,
                changes={"codes revoked": (None, revoked)},
                message=(stored_text.note(gettext_noop("Batch #%(number)s, code …%(hint)s"), number=batch.pk, hint=code.hint)
                         if code is not None else stored_text.note(gettext_noop("Batch #%(number)s, every unused code"), number=batch.pk)),
            )
    return revoked


def count_states(batches):
    """{batch id: {shown state: count}} for the batches, in one query."""
    now = timezone.now()
    rows = (
        RedemptionCode.objects.filter(batch__in=batches)
        .values("batch_id")
        .annotate(
            unused=Count("pk", filter=Q(state=State.UNUSED) & (Q(batch__expires_at__isnull=True) | Q(batch__expires_at__gt=now))),
            expired=Count("pk", filter=Q(state=State.UNUSED, batch__expires_at__lte=now)),
            redeeming=Count("pk", filter=Q(state=State.REDEEMING)),
            redeemed=Count("pk", filter=Q(state=State.REDEEMED)),
            revoked=Count("pk", filter=Q(state=State.REVOKED)),
        )
    )
    return {row.pop("batch_id"): row for row in rows}


# ---------------------------------------------------------------- redeeming


def _explain_unavailable(code, sub_key_id):
    """Why a code that could not be claimed cannot be redeemed, in the customer's words."""
    if code.state == State.REDEEMED:
        if code.batch.is_starter:
            # Its key may have been made after the customer was told the code was not used (a late write).
            return RedemptionRefused(gettext_lazy("This code has made its key already. If you were not shown the key, ask your provider for it."), 409)
        if code.sub_key_id == sub_key_id:
            return RedemptionRefused(f"You redeemed this code already, on {code.redeemed_at:%Y-%m-%d %H:%M} UTC.", 409)
        return RedemptionRefused(gettext_lazy("This code has been used already."), 409)
    if code.state == State.REDEEMING:
        return RedemptionRefused(gettext_lazy("This code is being redeemed right now. Look at your balance in a minute."), 409)
    if code.state == State.REVOKED:
        return RedemptionRefused(gettext_lazy("This code was withdrawn by your provider."), 410)
    return RedemptionRefused(f"This code expired on {code.batch.expires_at:%Y-%m-%d %H:%M} UTC.", 410)


def _claim(code, sub_key_id):
    """Take the code for this key: one UPDATE on the code's own row, so the database re-checks "unused" under its lock.

    (A condition on the batch would make Django update through a subquery, which PostgreSQL does not
    re-check for a row another transaction changed meanwhile: two claims could both win.)
    """
    if code.batch.is_expired:
        return 0
    return RedemptionCode.objects.filter(pk=code.pk, state=State.UNUSED).update(
        state=State.REDEEMING, sub_key_id=sub_key_id, claimed_at=timezone.now(), message=""
    )


def _give_back(code, message):
    """Return a held code to unused; its next attempt gets a new token (this one's ledger row is refused)."""
    RedemptionCode.objects.filter(pk=code.pk, state=State.REDEEMING, attempts=code.attempts).update(
        state=State.UNUSED, attempts=code.attempts + 1, sub_key_id="", key_label="", key_id_short="",
        claimed_at=None, topup=None, amount_usd=None, message=message[:2000],
    )


def _mark_redeemed(code, topup):
    with transaction.atomic():
        done = RedemptionCode.objects.filter(pk=code.pk, state=State.REDEEMING, attempts=code.attempts).update(
            state=State.REDEEMED, redeemed_at=timezone.now(), topup=topup, amount_usd=topup.amount, message=""
        )
        if done:
            code.refresh_from_db()
            webhooks.emit("code.redeemed", _event_data(code), f"code:{code.pk}:redeemed")
    return done


def _event_data(code):
    return {
        "code_hint": code.hint,
        "batch_id": code.batch_id,
        "sub_key_id": code.sub_key_id,
        "label": code.key_label,
        "key_id": code.key_id_short,
        "amount_usd": code.amount_usd,
        "redeemed_at": code.redeemed_at,
    }


def _note(code):
    return stored_text.note(gettext_noop("code …%(hint)s (batch #%(batch)s)"), hint=code.hint, batch=code.batch_id)


def _find(raw_code):
    code = RedemptionCode.objects.select_related("batch").filter(digest=digest_of(raw_code)).first()
    if code is None:
        raise RedemptionRefused(gettext_lazy("That code is not valid. Check it and type it again."))
    return code


def redeem(raw_code, sub_key_id):
    """Redeem a typed code for the key; return a Redemption or raise RedemptionRefused.

    DerouterError is raised when derouter could not be read before anything was written
    (the code is given back first).
    """
    code = _find(raw_code)
    if code.batch.is_starter:
        raise RedemptionRefused(gettext_lazy("This code makes a new key: sign out, then use it under “Have a starter code?” on the sign-in page."))
    if not _claim(code, sub_key_id):
        code.refresh_from_db()
        raise _explain_unavailable(code, sub_key_id)
    code.refresh_from_db()
    try:
        sub_key = crediting.read_key(sub_key_id)
    except crediting.KeyGone:
        _give_back(code, stored_text.note(gettext_noop("The key was not found at derouter.")))
        raise RedemptionRefused(gettext_lazy("Your key could not be found. Sign in again and retry."), 409) from None
    except DerouterError:
        _give_back(code, "derouter could not be read.")
        raise
    amount = code.batch.real_amount(sub_key.display_multiplier)
    shown = amount * sub_key.display_multiplier if code.batch.unit == CodeBatch.Unit.USD else code.batch.amount
    if amount <= 0:
        _give_back(code, stored_text.note(gettext_noop("Worth less than the ledger's smallest amount at this key's markup.")))
        raise RedemptionRefused(gettext_lazy("This code is worth too little for your key. Ask your provider."))
    RedemptionCode.objects.filter(pk=code.pk).update(key_label=sub_key.label[:200], key_id_short=sub_key.key_id[:64])
    try:
        topup = crediting.credit(sub_key, amount, _note(code), "code", code.pk, code.attempts, "redemption code")
    except DerouterError:
        _give_back(code, "derouter could not be read.")
        raise
    return _after_credit(code, topup, shown)


def _after_credit(code, topup, shown):
    if topup.outcome == Outcome.OK:
        _mark_redeemed(code, topup)
        code.refresh_from_db()
        return Redemption(code, shown)
    if topup.outcome == Outcome.REFUSED:
        _give_back(code, topup.message)
        raise RedemptionRefused(
            gettext_lazy("The top-up was refused, so your code was not used: try again later or ask your provider."), 409
        )
    RedemptionCode.objects.filter(pk=code.pk).update(topup=topup)
    code.refresh_from_db()
    return Redemption(code, shown, held=True)


# ---------------------------------------------------------------- starter codes: a new key


@dataclass(frozen=True)
class Started:
    """A starter code's new key: ``created`` (its secret, shown once) when derouter confirmed it, else held."""

    code: RedemptionCode
    created: object = None

    @property
    def held(self):
        return self.created is None


def _starter_token(code):
    return late_starters.starter_token(code, code.attempts)


def start(raw_code):
    """Make the new key a starter code is for, once; return Started or raise RedemptionRefused.

    The key is created through the console's key writes (audit event first, its token derived
    from the code's attempt): refused, the code is given back; unknown, it is held until the
    create is settled (the customer then asks the provider for the key, which was never shown).
    """
    code = _find(raw_code)
    if not code.batch.is_starter:
        raise RedemptionRefused(gettext_lazy("This code adds to an existing key: sign in with your key, then redeem it there."))
    if not _claim(code, ""):
        code.refresh_from_db()
        raise _explain_unavailable(code, "")
    code.refresh_from_db()
    try:
        write = keywrites.create_key(
            WorkerActor("starter code"), token=_starter_token(code), label=gettext_lazy("Starter …%(hint)s") % {"hint": code.hint},
            budget=code.batch.amount, rpm_limit=None,
        )
    except DerouterError:
        # Recorded as refused before it was raised (access or rate limiting).
        _give_back(code, "derouter refused the new key.")
        raise RedemptionRefused(gettext_lazy("Your key could not be made just now; your code was not used. Try again later."), 503) from None
    if write.is_ok:
        _mark_started(code, write.event, write.created.id)
        code.refresh_from_db()
        return Started(code, write.created)
    if write.is_refused:
        _give_back(code, write.event.message)
        raise RedemptionRefused(gettext_lazy("Your key could not be made; your code was not used. Try again later or ask your provider."), 409)
    return Started(code)


def _mark_started(code, event, sub_key_id):
    return RedemptionCode.objects.filter(pk=code.pk, state=State.REDEEMING, attempts=code.attempts).update(
        state=State.REDEEMED, sub_key_id=sub_key_id, key_label=event.key_label, key_id_short=event.key_id_short,
        redeemed_at=timezone.now(), amount_usd=code.batch.amount, message="",
    )


def _settle_starter(code, lease_ended):
    """A held starter code from its create's audit event (settled by the console's task)."""
    event = AuditEvent.objects.filter(form_token=_starter_token(code)).first()
    if event is None:
        if code.claimed_at is not None and code.claimed_at < lease_ended:
            _give_back(code, stored_text.note(gettext_noop("The new key was never asked for.")))
            return True
        return False
    if event.outcome == Outcome.OK and event.sub_key_id:
        RedemptionCode.objects.filter(pk=code.pk, state=State.REDEEMING, attempts=code.attempts).update(
            message=stored_text.note(
                gettext_noop("The key was made after the customer left: its secret was not shown; reveal it in the console."))
        )
        return bool(_mark_started(code, event, event.sub_key_id))
    if event.outcome == Outcome.REFUSED:
        _give_back(code, event.message)
        return True
    return False


def _settle_late_landings():
    """Codes given back whose earlier attempt was confirmed after all: redeemed by that attempt's key."""
    settled = []
    for code in RedemptionCode.objects.filter(state=State.UNUSED, attempts__gt=0):
        landed = crediting.landed_earlier("code", code.pk, code.attempts)
        if landed is None:
            continue
        done = RedemptionCode.objects.filter(pk=code.pk, state=State.UNUSED, attempts=code.attempts).update(
            state=State.REDEEMED, sub_key_id=landed.sub_key_id, key_label=landed.key_label,
            key_id_short=landed.key_id_short, claimed_at=landed.created_at, redeemed_at=timezone.now(), topup=landed,
            amount_usd=landed.amount,
            message=stored_text.note(gettext_noop("Its top-up was confirmed after it had been given back.")),
        )
        if done:
            settled.append(code)
    return settled


def settle_held_codes():
    """Finish codes held while their top-up was unknown; give back claims whose process died; take back codes
    whose earlier top-up was confirmed late, or whose earlier key was made late. Returns the codes settled."""
    lease_ended = timezone.now() - datetime.timedelta(seconds=settings.WRITE_SETTLE_SECONDS * 2)
    settled = _settle_late_landings() + late_starters.settle_late_starter_keys()
    for code in RedemptionCode.objects.filter(state=State.REDEEMING).select_related("topup", "batch"):
        if code.batch.is_starter:
            if _settle_starter(code, lease_ended):
                settled.append(code)
            continue
        topup = code.topup or TopUp.objects.filter(token=crediting.token_for("code", code.pk, code.attempts)).first()
        if topup is None:
            if code.claimed_at is not None and code.claimed_at < lease_ended:
                _give_back(code, stored_text.note(gettext_noop("The redemption stopped before its top-up was recorded.")))
                settled.append(code)
            continue
        if topup.outcome == Outcome.OK:
            if _mark_redeemed(code, topup):
                settled.append(code)
        elif topup.outcome == Outcome.REFUSED:
            _give_back(code, topup.message)
            settled.append(code)
    return settled


def has_held_codes():
    return (RedemptionCode.objects.filter(Q(state=State.REDEEMING) | Q(state=State.UNUSED, attempts__gt=0)).exists()
            or late_starters.has_starters_given_back())
