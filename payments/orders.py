"""Card payment orders: made in the portal, paid through one PaymentIntent, credited exactly once.

The credit is made when Stripe says the PaymentIntent succeeded, from whichever comes first:
the signed webhook event or the customer's return page (which retrieves the PaymentIntent).
Both call ``record_payment`` then ``credit_order``. Once per PaymentIntent: the order moves
created -> paid by one conditional UPDATE, and the top-up's token is derived from the order and
its credit attempt, so every process crediting the same attempt meets the same ledger row in
the money service. A credit derouter refused leaves the order "failed" with the next attempt's
token; an unknown one leaves it "paid" (crediting) until its ledger row is settled; the job
(``tasks.check_orders``) finishes both, and asks Stripe about orders stuck unpaid.
"""

import datetime
import logging
import uuid
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from automation import webhooks
from ledger import audit
from ledger.models import AuditEvent, Outcome
from derouter import client
from derouter.client import DerouterError
from lib import stored_text
from lib.money import exact_usd
from payments import crediting, stripe_api
from payments.models import LEDGER_PLACES, Order, ReceiptNumber, StripeSettings

logger = logging.getLogger(__name__)

State = Order.State
# Orders that may still become money the account has to fund.
OPEN_STATES = (State.CREATED, State.PAID, State.FAILED)
# A refused credit is tried again after 1, 2, 4, ... minutes, at most an hour apart.
MAX_RETRY_MINUTES = 60


class OrderRefused(Exception):
    """The order cannot be made (limits, balance, Stripe's answer); ``message`` is for the customer."""

    def __init__(self, message, status=409):
        super().__init__(message)
        self.message = message
        self.status = status


class EventMismatch(Exception):
    """A PaymentIntent that does not match our order (amount, currency, order, id): nothing is credited.

    Its text is the problems as stored notes, one a line (kept on the order); ``read`` says them in the active language.
    """

    def __init__(self, problems):
        super().__init__(stored_text.lines(*problems))
        self.problems = problems

    def read(self):
        return ", ".join(stored_text.read(problem) for problem in self.problems)


def _today_start():
    now = timezone.now().astimezone(datetime.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def outstanding_usd():
    """Real money promised to orders not yet credited (they will need the account's balance)."""
    now = timezone.now()
    fresh = now - datetime.timedelta(seconds=settings.ORDER_EXPIRES_AFTER_SECONDS)
    total = Order.objects.filter(
        Q(state__in=(State.PAID, State.FAILED)) | Q(state=State.CREATED, created_at__gt=fresh)
    ).aggregate(total=Sum("amount_usd"))["total"]
    return total or Decimal(0)


def create_order(snapshot, package):
    """An order and its PaymentIntent for the key's purchase of a package; raises OrderRefused.

    Refused over the per-key daily limit, or when the account's available balance (less what
    other open orders will need) cannot fund the package at the key's markup.
    """
    stripe_settings = StripeSettings.load()
    if not stripe_settings.is_ready or not package.active:
        raise OrderRefused(_("Card payments are not available right now."), 503)
    made_today = Order.objects.filter(sub_key_id=snapshot.sub_key_id, created_at__gte=_today_start()).exclude(
        state=State.EXPIRED
    ).count()
    if made_today >= stripe_settings.daily_orders_per_key:
        raise OrderRefused(
            f"You can make {stripe_settings.daily_orders_per_key} orders a day; try again tomorrow (UTC).", 429
        )
    sub_key = crediting.read_key(snapshot.sub_key_id)
    amount_usd = (package.credit / sub_key.display_multiplier).quantize(LEDGER_PLACES, rounding=ROUND_DOWN)
    if amount_usd <= 0:
        raise OrderRefused(_("This package cannot be bought for your key. Ask your provider."))
    available = client.get_balance().available
    if amount_usd + outstanding_usd() > available:
        raise OrderRefused(_("This package cannot be bought right now. Ask your provider, or try a smaller one."))
    order = Order.objects.create(
        token=uuid.uuid4(), sub_key_id=sub_key.id, key_label=sub_key.label[:200], key_id_short=sub_key.key_id[:64],
        package=package, package_name=package.name, price=package.price, currency=package.currency,
        amount_minor=package.amount_minor, credit=package.credit, display_multiplier=sub_key.display_multiplier,
        amount_usd=amount_usd,
    )
    try:
        intent = stripe_api.create_payment_intent(
            stripe_settings.get_secret_key(), amount_minor=order.amount_minor, currency=order.currency,
            order_token=order.token, sub_key_id=order.sub_key_id, package_name=package.name,
        )
    except (stripe_api.StripeUnavailable, stripe_api.StripeRefused) as error:
        Order.objects.filter(pk=order.pk).update(state=State.EXPIRED, message=stripe_api.stored_error(error)[:2000])
        raise OrderRefused(_("The payment could not be started. Try again in a moment."), 503) from None
    Order.objects.filter(pk=order.pk).update(payment_intent_id=intent["id"])
    order.payment_intent_id = intent["id"]
    return order, intent["client_secret"]


def get_client_secret(order):
    """The PaymentIntent's client secret for the payment page (asked of Stripe: it is not stored)."""
    intent = stripe_api.retrieve_payment_intent(StripeSettings.load().get_secret_key(), order.payment_intent_id)
    return intent["client_secret"], intent["status"]


# ---------------------------------------------------------------- paid -> credited


def _check_intent(order, intent):
    """Raise EventMismatch unless the PaymentIntent is this order's, for its amount and currency, and succeeded."""
    metadata = intent.get("metadata") or {}
    problems = []
    if intent.get("id") != order.payment_intent_id:
        problems.append(stored_text.note(gettext_noop("another PaymentIntent")))
    if metadata.get("order") != str(order.token):
        problems.append(stored_text.note(gettext_noop("another order in its metadata")))
    if intent.get("amount") != order.amount_minor or str(intent.get("currency", "")).lower() != order.currency:
        problems.append(stored_text.note(
            gettext_noop("%(paid)s instead of %(ordered)s"),
            paid=f"{intent.get('amount')} {intent.get('currency')}", ordered=f"{order.amount_minor} {order.currency}"))
    if intent.get("status") != "succeeded":
        problems.append(stored_text.note(gettext_noop("status %(status)s"), status=str(intent.get("status"))))
    if problems:
        raise EventMismatch(problems)


def find_order_for(intent):
    """The order a PaymentIntent (from an event or Stripe) belongs to, or None."""
    token = (intent.get("metadata") or {}).get("order")
    try:
        token = uuid.UUID(str(token))
    except ValueError:
        return None
    return Order.objects.filter(token=token, payment_intent_id=intent.get("id")).first()


def record_payment(order, intent):
    """Mark the order paid (once) if the PaymentIntent says it succeeded; raises EventMismatch otherwise."""
    _check_intent(order, intent)
    with transaction.atomic():
        moved = Order.objects.filter(pk=order.pk, state__in=(State.CREATED, State.EXPIRED)).update(
            state=State.PAID, paid_at=timezone.now()
        )
        if moved:
            number = ReceiptNumber.objects.create(order_id=order.pk).pk
            Order.objects.filter(pk=order.pk).update(receipt_number=number)
    order.refresh_from_db()
    return order


def _note(order):
    return stored_text.note(gettext_noop("card payment, receipt #%(number)s (%(price)s %(currency)s)"),
                            number=order.receipt_number, price=f"{order.price}", currency=order.currency.upper())


def credit_order(order):
    """Credit a paid order's key once; returns the order as it stands after (credited, paid or failed)."""
    order.refresh_from_db()
    if order.state not in (State.PAID, State.FAILED):
        return order
    attempt = order.credit_attempts
    # A credit settled as landed since the order last moved (an unknown outcome confirmed, a late write,
    # this very attempt settled by another process or by the key's delete) is the order's credit.
    landed = crediting.landed_earlier("order", order.pk, attempt + 1)
    if landed is not None:
        return settle_credit(order, landed, attempt)
    try:
        sub_key = crediting.read_key(order.sub_key_id)
        topup = crediting.credit(sub_key, order.amount_usd, _note(order), "order", order.pk, attempt, "card payment")
    except crediting.KeyGone:
        # The key's delete settled its moves first: one of this order's may have landed just before.
        landed = crediting.landed_earlier("order", order.pk, attempt + 1)
        if landed is not None:
            return settle_credit(order, landed, attempt)
        _fail(order, attempt, stored_text.note(
            gettext_noop("The key no longer exists at derouter: refund the payment, or credit another key by hand.")))
        return _reloaded(order)
    except DerouterError as error:
        # Nothing was written: the order stays paid and the job tries again.
        Order.objects.filter(pk=order.pk, state__in=(State.PAID, State.FAILED)).update(
            message=stored_text.note(gettext_noop("derouter could not be read: %(reason)s"), reason=str(error)))
        return _reloaded(order)
    return settle_credit(order, topup, attempt)


def settle_credit(order, topup, attempt):
    """Move the order on from its ledger row's outcome (called right after the credit, and by the job)."""
    if topup.outcome == Outcome.OK:
        with transaction.atomic():
            done = Order.objects.filter(
                pk=order.pk, state__in=(State.PAID, State.FAILED), credit_attempts=attempt
            ).update(state=State.CREDITED, topup=topup, credited_at=timezone.now(), message="")
            if done:
                order.refresh_from_db()
                webhooks.emit("payment.credited", event_data(order), f"order:{order.pk}:credited")
    elif topup.outcome == Outcome.REFUSED:
        landed = crediting.landed_earlier("order", order.pk, attempt)
        if landed is not None:
            # An earlier attempt was confirmed late: that one is the order's credit.
            return settle_credit(order, landed, attempt)
        _fail(order, attempt, topup.message)
    else:
        Order.objects.filter(pk=order.pk, credit_attempts=attempt).update(topup=topup)
    return _reloaded(order)


def _fail(order, attempt, message):
    Order.objects.filter(pk=order.pk, state__in=(State.PAID, State.FAILED), credit_attempts=attempt).update(
        state=State.FAILED, credit_attempts=attempt + 1, topup=None, message=message[:2000]
    )


def _reloaded(order):
    order.refresh_from_db()
    return order


def fulfil(order, intent):
    """Record the payment and credit it: what the webhook and the return page both do."""
    record_payment(order, intent)
    return credit_order(order)


def fulfil_from_stripe(order):
    """Ask Stripe about the order's PaymentIntent; credit it if it succeeded. Returns the order."""
    if order.state not in (State.CREATED, State.EXPIRED, State.PAID, State.FAILED) or not order.payment_intent_id:
        return order
    intent = stripe_api.retrieve_payment_intent(StripeSettings.load().get_secret_key(), order.payment_intent_id)
    if intent.get("status") == "succeeded":
        return fulfil(order, intent)
    return order


def retry_due(order, now=None):
    """Whether a failed order's next credit attempt is due (backoff: 1, 2, 4, ... minutes after the last)."""
    now = now or timezone.now()
    minutes = min(2 ** max(order.credit_attempts - 1, 0), MAX_RETRY_MINUTES)
    last = order.paid_at if order.topup_id is None else order.topup.created_at
    return last is None or now - last >= datetime.timedelta(minutes=minutes)


def event_data(order):
    return {
        "order": order.token,
        "receipt_number": order.receipt_number,
        "sub_key_id": order.sub_key_id,
        "label": order.key_label,
        "key_id": order.key_id_short,
        "package": order.package_name,
        "price": order.price,
        "currency": order.currency,
        "credit_shown": order.credit,
        "amount_usd": order.amount_usd,
        "state": order.state,
    }


# ---------------------------------------------------------------- refunds


def refund(order, user):
    """Refund a paid order at Stripe (once) and say what of its credit could be taken back; returns a sentence (a note)."""
    if order.state not in (State.PAID, State.FAILED, State.CREDITED):
        return stored_text.note(gettext_noop("There is nothing to refund: the order is “%(state)s”."),
                                state=stored_text.note_of_label(order.get_state_display()))
    stripe_settings = StripeSettings.load()
    answer = stripe_api.refund_payment_intent(stripe_settings.get_secret_key(), order.payment_intent_id, order.token)
    return record_refund(order, answer.get("id", ""), user=user)


def record_refund(order, refund_id, user=None):
    """Mark the order refunded (once), take back what is still unspent of its credit, audit it; returns a sentence (a note)."""
    order.refresh_from_db()
    was_credited = order.state == State.CREDITED
    with transaction.atomic():
        # A refund event may come before the payment's own (events arrive in any order): a refunded order is never credited.
        moved = Order.objects.filter(pk=order.pk).exclude(state=State.REFUNDED).update(
            state=State.REFUNDED, refunded_at=timezone.now(), refund_id=refund_id[:255]
        )
        if not moved:
            return stored_text.note(gettext_noop("This order was refunded already."))
        message = _take_back(order, was_credited)
        Order.objects.filter(pk=order.pk).update(taken_back_usd=Decimal(0), message=message[:2000])
        audit.record(
            user, AuditEvent.Action.REFUND, Outcome.OK, sub_key_id=order.sub_key_id, label=order.key_label,
            key_id_short=order.key_id_short, changes={"order": (order.state, State.REFUNDED)},
            message=stored_text.note(gettext_noop("Receipt #%(number)s, %(price)s %(currency)s: %(outcome)s"),
                                     number=order.receipt_number, price=f"{order.price}", currency=order.currency.upper(),
                                     outcome=message),
            actor_name=None if user is not None else "Stripe (charge.refunded)",
        )
        order.refresh_from_db()
        webhooks.emit("payment.refunded", event_data(order), f"order:{order.pk}:refunded")
    return stored_text.note(gettext_noop("Refunded %(price)s %(currency)s. %(outcome)s"),
                            price=f"{order.price}", currency=order.currency.upper(), outcome=message)


def _take_back(order, was_credited):
    """What could be taken back of the order's credit; derouter cannot lower a key's budget, so it says what stays."""
    if not was_credited:
        return stored_text.note(gettext_noop("Nothing had been credited to the key."))
    try:
        sub_key = crediting.read_key(order.sub_key_id)
    except crediting.KeyGone:
        return stored_text.note(gettext_noop("The key no longer exists: its unspent budget went back to the account when it was deleted."))
    except DerouterError:
        return stored_text.note(gettext_noop("Could not take back the %(amount)s credited: derouter could not be read. "
                                             "Check the key's budget."), amount=exact_usd(order.amount_usd))
    unspent = min(order.amount_usd, max(sub_key.remaining, Decimal(0)))
    return stored_text.note(
        gettext_noop("Could not take back the %(unspent)s still unspent of the %(amount)s credited: derouter has no way "
                     "to lower a key's budget. It stays usable on the key; deleting the key returns its unspent budget."),
        unspent=exact_usd(unspent), amount=exact_usd(order.amount_usd),
    )



# ---------------------------------------------------------------- the job: orders stuck in a state

# An unpaid order is asked about once it is this old (a return page the customer never reached).
ASK_STRIPE_AFTER = datetime.timedelta(minutes=10)


def has_orders_to_check():
    return Order.objects.filter(
        Q(state__in=(State.PAID, State.FAILED)) | Q(state=State.CREATED, created_at__lte=timezone.now() - ASK_STRIPE_AFTER)
    ).exists()


def check_stuck_orders(keep=None):
    """Finish what the pages left: credits unknown, refused or never tried, and payments nobody came back from.

    Returns {what happened: how many}. ``keep`` (a lease's) is called after every order.
    """
    keep = keep or (lambda: None)
    now = timezone.now()
    done = {"credited": 0, "still crediting": 0, "failed": 0, "expired": 0}
    for order in Order.objects.filter(state=State.PAID).select_related("topup"):
        if order.topup is not None and order.topup.outcome in (Outcome.PENDING, Outcome.UNKNOWN):
            # Its ledger row is settled from derouter's figures by the console's task; nothing to send again.
            done["still crediting"] += 1
            continue
        order = settle_credit(order, order.topup, order.credit_attempts) if order.topup else credit_order(order)
        done["credited" if order.state == State.CREDITED else "failed" if order.state == State.FAILED else "still crediting"] += 1
        keep()
    for order in Order.objects.filter(state=State.FAILED).select_related("topup"):
        landed = crediting.landed_earlier("order", order.pk, order.credit_attempts)
        if landed is not None:
            order = settle_credit(order, landed, order.credit_attempts)
            done["credited"] += 1
        elif retry_due(order, now):
            order = credit_order(order)
            done["credited" if order.state == State.CREDITED else "failed"] += 1
        keep()
    stripe_settings = StripeSettings.load()
    if stripe_settings.secret_key_encrypted:
        expire_before = now - datetime.timedelta(seconds=settings.ORDER_EXPIRES_AFTER_SECONDS)
        for order in Order.objects.filter(state=State.CREATED, created_at__lte=now - ASK_STRIPE_AFTER):
            order = _ask_stripe(order, stripe_settings, expire_before)
            if order.state == State.EXPIRED:
                done["expired"] += 1
            elif order.state == State.CREDITED:
                done["credited"] += 1
            keep()
    return done


def _ask_stripe(order, stripe_settings, expire_before):
    try:
        order = fulfil_from_stripe(order)
    except stripe_api.StripeUnavailable as error:
        Order.objects.filter(pk=order.pk).update(message=stripe_api.stored_error(error)[:2000])
        return _reloaded(order)
    except EventMismatch as mismatch:
        Order.objects.filter(pk=order.pk).update(message=str(mismatch))
        return _reloaded(order)
    except stripe_api.StripeRefused as refusal:
        if refusal.status != 404:
            return order
    if order.state == State.CREATED and order.created_at <= expire_before:
        try:
            stripe_api.cancel_payment_intent(stripe_settings.get_secret_key(), order.payment_intent_id)
        except (stripe_api.StripeUnavailable, stripe_api.StripeRefused):
            # Cancelling only keeps a late payment from starting; a payment that succeeds after all is still credited.
            pass
        Order.objects.filter(pk=order.pk, state=State.CREATED).update(state=State.EXPIRED)
    return _reloaded(order)
