"""Money in, three ways: Stripe's payments and refunds <-> orders and code redemptions <-> ledger rows.

The fourth leg, ledger rows <-> derouter's budgets, is the console's reconciliation
(dashboard.reconcile), run beside this one. Every problem is listed with its amount:

- paid, not credited: Stripe says a PaymentIntent of ours succeeded (or our order says paid)
  and no confirmed credit exists for it after the grace period (one-click retry);
- credit without payment: a confirmed card-payment or code ledger row that no paid order or
  redeemed code accounts for, or an order credited whose payment Stripe does not report;
- refunded at Stripe, not here: a refunded charge whose order is not marked refunded;
- refund not taken back: a refunded order whose credit was (partly) left on the key;
- code redeemed without a credit: a redeemed code whose ledger row is not confirmed.
"""

import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from ledger.models import Outcome, TopUp
from lib.money import exact_usd
from lib.stored_text import lines, note, note_of_label, read_in_english
from payments import stripe_api
from payments.models import MoneyInCheck, MoneyInProblem, Order, RedemptionCode, StripeSettings

Kind = MoneyInProblem.Kind
State = Order.State
# A payment may take this long to be credited before it is a problem (the webhook, the return page, the job).
GRACE = datetime.timedelta(minutes=15)
# How far back Stripe's PaymentIntents are read (its events are retried for three days).
STRIPE_WINDOW = datetime.timedelta(days=35)


def _price(order):
    return f"{order.price} {order.currency.upper()}"


def _order_problem(kind, order, detail, amount=None):
    return MoneyInProblem(kind=kind, order=order, sub_key_id=order.sub_key_id, key_label=order.key_label,
                          amount_usd=order.amount_usd if amount is None else amount, detail=detail)


def _from_orders(now):
    problems = []
    late = now - GRACE
    for order in Order.objects.filter(state__in=(State.PAID, State.FAILED), paid_at__lte=late):
        problems.append(_order_problem(
            Kind.PAID_NOT_CREDITED, order,
            lines(note(gettext_noop("Receipt #%(number)s: paid %(price)s on %(when)s UTC, %(amount)s not credited yet (%(state)s)."),
                       number=order.receipt_number, price=_price(order), when=f"{order.paid_at:%Y-%m-%d %H:%M}",
                       amount=exact_usd(order.amount_usd), state=note_of_label(order.get_state_display())),
                  order.message),
        ))
    for order in Order.objects.filter(state__in=(State.CREDITED, State.REFUNDED)).exclude(topup=None).select_related("topup"):
        if order.topup.outcome != Outcome.OK:
            problems.append(_order_problem(
                Kind.PAID_NOT_CREDITED, order,
                note(gettext_noop("Receipt #%(number)s: its ledger row is %(outcome)s."),
                     number=order.receipt_number, outcome=note_of_label(order.topup.get_outcome_display())),
            ))
    for order in Order.objects.filter(state=State.REFUNDED).exclude(topup=None):
        left = order.amount_usd - (order.taken_back_usd or 0)
        if left > 0:
            problems.append(_order_problem(
                Kind.REFUND_NOT_TAKEN_BACK, order,
                lines(note(gettext_noop("Receipt #%(number)s was refunded; %(amount)s of its credit was not taken back."),
                           number=order.receipt_number, amount=exact_usd(left)),
                      order.message),
                amount=left,
            ))
    return problems


def _from_ledger():
    """Confirmed money-in ledger rows that no order or code accounts for."""
    accounted = set(Order.objects.exclude(topup=None).values_list("topup_id", flat=True))
    accounted |= set(RedemptionCode.objects.exclude(topup=None).values_list("topup_id", flat=True))
    problems = []
    rows = TopUp.objects.filter(outcome=Outcome.OK, actor=None, actor_name__in=("card payment", "redemption code"))
    for row in rows.exclude(pk__in=accounted):
        problems.append(MoneyInProblem(
            kind=Kind.CREDIT_WITHOUT_PAYMENT, sub_key_id=row.sub_key_id, key_label=row.key_label, amount_usd=row.amount,
            detail=note(gettext_noop("Ledger row of %(when)s UTC (%(note)s) credited %(amount)s "
                                     "that no paid order or redeemed code accounts for."),
                        when=f"{row.created_at:%Y-%m-%d %H:%M}", note=row.note, amount=exact_usd(row.amount)),
        ))
    for code in RedemptionCode.objects.filter(state=RedemptionCode.State.REDEEMED).select_related("topup"):
        if code.topup is None or code.topup.outcome != Outcome.OK:
            problems.append(MoneyInProblem(
                kind=Kind.CODE_WITHOUT_CREDIT, code=code, sub_key_id=code.sub_key_id, key_label=code.key_label,
                amount_usd=code.amount_usd,
                detail=note(gettext_noop("Code …%(hint)s (batch #%(batch)s) is redeemed but its top-up is not confirmed."),
                            hint=code.hint, batch=code.batch_id),
            ))
    return problems


def _charge(intent):
    charge = intent.get("latest_charge")
    return charge if isinstance(charge, dict) else {}


def _from_stripe(secret_key, now):
    """Compare Stripe's PaymentIntents of the window with our orders; returns (problems, how many payments were read)."""
    intents = stripe_api.list_payment_intents(secret_key, int((now - STRIPE_WINDOW).timestamp()))
    orders = {order.payment_intent_id: order for order in Order.objects.exclude(payment_intent_id=None).filter(
        payment_intent_id__in=[intent["id"] for intent in intents])}
    problems = []
    for intent in intents:
        if intent.get("status") != "succeeded":
            continue
        order = orders.get(intent["id"])
        if order is None:
            continue  # Not made by this console (the account may sell other things).
        if order.state in (State.CREATED, State.EXPIRED) and order.created_at <= now - GRACE:
            problems.append(_order_problem(
                Kind.PAID_NOT_CREDITED, order,
                note(gettext_noop("Stripe reports %(payment)s succeeded (%(price)s); the order is “%(state)s” and nothing was credited."),
                     payment=intent["id"], price=_price(order), state=note_of_label(order.get_state_display())),
            ))
        charge = _charge(intent)
        if (charge.get("refunded") or charge.get("amount_refunded")) and order.state != State.REFUNDED:
            problems.append(_order_problem(
                Kind.REFUND_NOT_RECORDED, order,
                note(gettext_noop("Stripe reports %(payment)s refunded (%(refunded)s of %(amount)s in %(currency)s minor units); "
                                  "the order is “%(state)s”."),
                     payment=intent["id"], refunded=str(charge.get("amount_refunded")), amount=str(intent.get("amount")),
                     currency=order.currency.upper(), state=note_of_label(order.get_state_display())),
            ))
    paid_here = Order.objects.filter(state=State.CREDITED, credited_at__gte=now - STRIPE_WINDOW + GRACE)
    succeeded = {intent["id"] for intent in intents if intent.get("status") == "succeeded"}
    for order in paid_here.exclude(payment_intent_id__in=succeeded):
        problems.append(_order_problem(
            Kind.CREDIT_WITHOUT_PAYMENT, order,
            note(gettext_noop("Receipt #%(number)s was credited but Stripe does not report %(payment)s as succeeded."),
                 number=order.receipt_number, payment=order.payment_intent_id),
        ))
    return problems, len(intents)


def check(requested_by=""):
    """One check: stores and returns a MoneyInCheck with its problems. Stripe unavailable is noted, the rest still checked."""
    now = timezone.now()
    problems = _from_orders(now) + _from_ledger()
    record = MoneyInCheck(requested_by=requested_by)
    secret_key = StripeSettings.load().get_secret_key()
    if secret_key:
        try:
            stripe_problems, record.payments_checked = _from_stripe(secret_key, now)
        except (stripe_api.StripeUnavailable, stripe_api.StripeRefused) as error:
            record.error = note(gettext_noop("Stripe could not be read, so its payments were not compared: %(reason)s"),
                                reason=stripe_api.stored_error(error))
        else:
            record.stripe_asked = True
            seen = {(problem.kind, problem.order_id) for problem in problems}
            problems += [problem for problem in stripe_problems if (problem.kind, problem.order_id) not in seen]
    with transaction.atomic():
        record.save()
        for problem in problems:
            problem.run = record
        MoneyInProblem.objects.bulk_create(problems)
    return record


def latest():
    return MoneyInCheck.objects.first()


class MoneyInReconciliation:
    """Money in as a further check of the console's reconciliation (registered by the app's ready())."""

    def page_section(self):
        return "payments/_money_in_check.html", {"check": latest()}

    def run_for_command(self):
        """Run a check now: (lines for ``manage.py reconcile``, how many problems)."""
        record = check(requested_by="manage.py reconcile")
        # For the command's output: English, as the rest of it.
        said = [read_in_english(record.error)] if record.error else []
        problems = list(record.problems.all())
        for problem in problems:
            amount = f"{exact_usd(problem.amount_usd)}: " if problem.amount_usd is not None else ""
            said.append(f"Money in: {read_in_english(note_of_label(problem.get_kind_display()))}: "
                        f"{problem.key_label or problem.sub_key_id}: {amount}{read_in_english(problem.detail)}")
        return said, len(problems)


MONEY_IN_CHECK = MoneyInReconciliation()
