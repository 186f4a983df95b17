"""Stripe's webhook: signed events only, each event id acted on once."""

import logging

from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from lib import stored_text
from payments import orders, stripe_api
from payments.models import Order, StripeEvent, StripeSettings

logger = logging.getLogger(__name__)


def _plain(status, text):
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


def _on_payment_succeeded(intent):
    order = orders.find_order_for(intent)
    if order is None:
        return None, "No order of ours has this PaymentIntent: ignored."
    try:
        order = orders.fulfil(order, intent)
    except orders.EventMismatch as mismatch:
        with translation.override("en"):
            problems = mismatch.read()
        logger.warning("stripe webhook: PaymentIntent does not match order %s: %s", order.token, problems)
        return order, f"Does not match the order ({problems}): nothing credited."
    return order, f"Order {order.get_state_display().lower()}."


def _on_charge_refunded(charge):
    order = Order.objects.filter(payment_intent_id=charge.get("payment_intent") or "-").first()
    if order is None:
        return None, "No order of ours has this charge: ignored."
    if charge.get("amount_refunded", 0) < order.amount_minor:
        return order, "Partly refunded at Stripe: the order is left as it is; refund it from the console to take it back."
    refunds = (charge.get("refunds") or {}).get("data") or [{}]
    # The event's result is a record for the operator's logs, in English like the rest of them.
    return order, stored_text.read_in_english(orders.record_refund(order, refunds[0].get("id", "")))


HANDLERS = {
    "payment_intent.succeeded": _on_payment_succeeded,
    "charge.refunded": _on_charge_refunded,
}


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Verify the signature with the webhook secret, drop an event seen before, then act on it."""
    stripe_settings = StripeSettings.load()
    secret = stripe_settings.get_webhook_secret()
    if not secret:
        return _plain(400, "Card payments are not set up here.")
    try:
        event = stripe_api.verify_event(request.body, request.headers.get("Stripe-Signature"), secret)
    except stripe_api.BadSignature:
        return _plain(400, "The signature does not verify.")
    if stripe_settings.account_id and event.get("account") not in (None, stripe_settings.account_id):
        return _plain(400, "This event is for another Stripe account.")
    handler = HANDLERS.get(event.get("type"))
    try:
        with transaction.atomic():
            seen = StripeEvent.objects.create(event_id=event.get("id"), event_type=str(event.get("type"))[:100])
    except IntegrityError:
        return JsonResponse({"received": True, "duplicate": True})
    if handler is None:
        StripeEvent.objects.filter(pk=seen.pk).update(result="Not an event we act on.")
        return JsonResponse({"received": True})
    acted = False
    try:
        order, result = handler(event["data"]["object"])
        acted = True
    finally:
        if not acted:
            # Forget the event so Stripe's next delivery of it is acted on.
            StripeEvent.objects.filter(pk=seen.pk).delete()
    StripeEvent.objects.filter(pk=seen.pk).update(order=order, result=result[:300])
    return JsonResponse({"received": True})
