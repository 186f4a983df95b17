"""The demo's money in (run by ``manage.py demo``): a batch of codes and, against localstripe, card payments."""

import json
import secrets
import urllib.request
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from payments import codes
from payments.models import CodeBatch, Package, StripeSettings


class Command(BaseCommand):
    help = (
        "Set up the demo's money in: three redemption codes (one is answered, as codes are shown only once) and, "
        "with --cards, card payments against the localstripe at STRIPE_API_BASE (demo keys, two packages, its webhook)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--webhook-url", required=True, help="Where localstripe sends its signed events.")
        parser.add_argument("--cards", action="store_true", help="Set up card payments against localstripe.")

    def handle(self, *args, webhook_url, cards, **options):
        owner = User.objects.get(username="owner")
        _, texts = codes.create_batch(owner, 3, Decimal("10"), CodeBatch.Unit.CUSTOMER, note="Demo codes")
        lines = [f"A redemption code worth 10 (Redeem a code): {texts[0]}"]
        if cards:
            self._set_up_cards(webhook_url)
            lines.append(f"Buy credit: card 4242 4242 4242 4242, any future expiry, any CVC (localstripe at {settings.STRIPE_API_BASE})")
        return "\n".join(lines)

    def _set_up_cards(self, webhook_url):
        webhook_secret = "whsec_demo_" + secrets.token_urlsafe(16)
        row = StripeSettings.load()
        row.enabled, row.publishable_key = True, "pk_test_demo"
        row.set_secret_key("sk_test_demo_" + secrets.token_urlsafe(12))
        row.set_webhook_secret(webhook_secret)
        row.save()
        if not Package.objects.exists():
            Package.objects.create(name="Starter", price=Decimal("20.00"), currency="usd", credit=Decimal("25"))
            Package.objects.create(name="Pro", price=Decimal("50.00"), currency="usd", credit=Decimal("70"))
        # localstripe's own configuration call: where to send events, signed with this secret.
        body = json.dumps({"url": webhook_url, "secret": webhook_secret}).encode()
        request = urllib.request.Request(
            f"{settings.STRIPE_API_BASE}/_config/webhooks/demo", data=body, headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10).close()
