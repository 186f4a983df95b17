"""The one module that talks to Stripe, through the official SDK: one function per call, one exception family.

The secret key is read from the owner's settings for each call and handed to a client
object (never the SDK's global key), and no message raised from here carries it: Stripe's
own error text is kept, the key is not in it. ``STRIPE_API_BASE`` points the SDK elsewhere
(localstripe in tests and the demo).
"""

import logging

import stripe
from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from lib import stored_text

logger = logging.getLogger(__name__)

STRIPE_API = "https://api.stripe.com"


class StripeUnavailable(Exception):
    """Stripe could not be asked or did not answer; nothing is known about the call's effect."""


class StripeRefused(Exception):
    """Stripe answered with an error (bad key, unknown object, invalid request)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        self.status = status


class NotConfigured(StripeRefused):
    """The owner has not saved Stripe keys."""


def stored_error(error):
    """An error of this family as text to store: our own words as a note (read in each reader's language), Stripe's as they are."""
    text = error.args[0] if error.args else ""
    return stored_text.note_of_label(text) if isinstance(text, Promise) else str(text)


def _client(secret_key):
    if not secret_key:
        raise NotConfigured(_("Card payments are not set up: save the Stripe secret key first."))
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=settings.STRIPE_NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT),
    )


def _call(action, *args, **kwargs):
    """The answer as plain dicts and lists (the SDK's objects are not dicts), or one of our exceptions."""
    try:
        answer = action(*args, **kwargs)
        return answer.to_dict() if hasattr(answer, "to_dict") else answer
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        logger.warning("stripe: %s", type(error).__name__)
        raise StripeUnavailable(_("Stripe could not be reached. Try again in a moment.")) from None
    except stripe.StripeError as error:
        status = getattr(error, "http_status", None)
        if status is not None and status >= 500:
            logger.warning("stripe: server error %s", status)
            raise StripeUnavailable(_("Stripe answered with a server error. Try again in a moment.")) from None
        if status in (401, 403):
            # Stripe's own text repeats the key's last characters: say it in our words.
            raise StripeRefused(_("Stripe did not accept the secret key."), status) from None
        message = getattr(error, "user_message", None) or _("Stripe refused the request.")
        logger.info("stripe: refused (%s)", status)
        raise StripeRefused(message, status) from None


def check_keys(secret_key):
    """Ask Stripe something harmless with the key, so a wrong key is found on saving, not on a customer's payment.

    Returns the account's id (events for another account are then refused), or "" when Stripe
    does not say (localstripe has no account endpoint).
    """
    client = _client(secret_key)
    _call(client.v1.payment_intents.list, params={"limit": 1})
    try:
        return _call(client.v1.accounts.retrieve_current).get("id", "")
    except StripeRefused:
        return ""


def create_payment_intent(secret_key, *, amount_minor, currency, order_token, sub_key_id, package_name):
    """A PaymentIntent for one order; the order's token is the idempotency key, so a retried create makes no second one."""
    client = _client(secret_key)
    params = {
        "amount": amount_minor,
        "currency": currency,
        "payment_method_types": ["card"],
        "metadata": {"order": str(order_token), "sub_key_id": sub_key_id, "package": package_name},
    }
    return _call(client.v1.payment_intents.create, params=params, options={"idempotency_key": f"order-{order_token}"})


def retrieve_payment_intent(secret_key, payment_intent_id):
    return _call(_client(secret_key).v1.payment_intents.retrieve, payment_intent_id)


def cancel_payment_intent(secret_key, payment_intent_id):
    return _call(_client(secret_key).v1.payment_intents.cancel, payment_intent_id)


def refund_payment_intent(secret_key, payment_intent_id, order_token):
    """Refund the whole payment once: the order's token makes a repeated click the same refund."""
    client = _client(secret_key)
    return _call(
        client.v1.refunds.create, params={"payment_intent": payment_intent_id},
        options={"idempotency_key": f"refund-{order_token}"},
    )


def list_payment_intents(secret_key, created_after, limit=100):
    """The account's PaymentIntents created since a unix time, newest first, page by page (for reconciliation).

    Stripe lists newest first, so the walk stops at the first older one (no ``created`` filter: localstripe has none).
    """
    client = _client(secret_key)
    intents, starting_after = [], None
    while True:
        params = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        page = _call(client.v1.payment_intents.list, params=params)
        recent = [intent for intent in page["data"] if intent.get("created", 0) >= created_after]
        intents += recent
        if not page.get("has_more") or not page["data"] or len(recent) < len(page["data"]):
            return intents
        starting_after = page["data"][-1]["id"]


class BadSignature(Exception):
    """The event was not signed with our webhook secret (or not recently): not from Stripe for us."""


def verify_event(payload, signature_header, webhook_secret):
    """The event, if Stripe signed this payload with our webhook secret within the tolerance; else BadSignature."""
    if not webhook_secret or not signature_header:
        raise BadSignature("unsigned")
    try:
        return stripe.Webhook.construct_event(payload, signature_header, webhook_secret).to_dict()
    except (stripe.SignatureVerificationError, ValueError):
        raise BadSignature("bad signature") from None


def charge_of(intent):
    """The id of a PaymentIntent's latest charge (an id, or an expanded object as localstripe sends it)."""
    charge = intent.get("latest_charge")
    if isinstance(charge, str) or charge is None:
        return charge
    return charge.get("id")


def is_test_double():
    """Whether the SDK talks to a stand-in (localstripe in tests and the demo) rather than Stripe itself."""
    return settings.STRIPE_API_BASE != STRIPE_API


def confirm_with_card_token(secret_key, payment_intent_id, token_id):
    """Against localstripe only: pay a PaymentIntent with the card its stand-in stripe.js tokenized.

    localstripe's stripe.js has no Payment Element (no ``confirmPayment``) and takes no confirm
    from the browser, so its card form's token is confirmed here. Never used against Stripe.
    """
    if not is_test_double():
        raise StripeRefused("Card tokens are confirmed by Stripe.js itself.")
    client = _client(secret_key)
    token = _call(client.v1.tokens.retrieve, token_id)
    _call(client.v1.payment_intents.update, payment_intent_id, params={"payment_method": token["card"]["id"]})
    return _call(client.v1.payment_intents.confirm, payment_intent_id)
