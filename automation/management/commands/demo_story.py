"""The demo's story (run by ``manage.py demo``): money moved, an audit trail, a fired alert, a request waiting.

Told once per simulator state: a later run only points the demo's webhook endpoint at the
receiver it started this time. Everything goes through the services a person's clicks use
(top-ups through the money service, the alert through its evaluation, the request through
the portal's submit), so the ledger, the audit trail and the webhooks are the real ones.
"""

import uuid
from decimal import Decimal

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from automation import alerts, audit_changes, budget_requests, webhooks
from automation.models import WEBHOOK_EVENTS, AlertRule, WebhookEndpoint
from dashboard import topups
from derouter import client
from ledger.models import TopUp
from mirror import snapshot
from mirror.models import KeySnapshot

RECEIVER_DESCRIPTION = "Demo receiver (started by manage.py demo)"
TOP_UPS = (Decimal("25"), Decimal("10"))


class Command(BaseCommand):
    help = (
        "Tell the demo's story against the running simulator: two top-ups, a webhook endpoint at --receiver-url, "
        "a fired alert and a budget request waiting. Prints the endpoint's signing secret."
    )

    def add_arguments(self, parser):
        parser.add_argument("--receiver-url", required=True, help="The demo's local webhook receiver.")

    def handle(self, *args, receiver_url, **options):
        owner = User.objects.get(username="owner")
        endpoint, secret = self._point_endpoint(owner, receiver_url)
        sub_keys = sorted(client.list_sub_keys(), key=lambda key: key.label)
        snapshot.refresh_snapshot()
        snapshot.refresh_balance()
        if sub_keys and not TopUp.objects.filter(sub_key_id__in=[key.id for key in sub_keys]).exists():
            self._tell(owner, sub_keys)
        return secret

    def _point_endpoint(self, owner, receiver_url):
        """The demo's endpoint (all events) at this run's receiver; (endpoint, its signing secret)."""
        endpoint = WebhookEndpoint.objects.filter(description=RECEIVER_DESCRIPTION).first()
        if endpoint is None or endpoint.get_secret() is None:
            WebhookEndpoint.objects.filter(description=RECEIVER_DESCRIPTION).delete()
            endpoint, secret = webhooks.create_endpoint(
                receiver_url, list(WEBHOOK_EVENTS), RECEIVER_DESCRIPTION, created_by_name=owner.username
            )
            audit_changes.record_added(owner, endpoint)
            return endpoint, secret
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=receiver_url, enabled=True)
        return endpoint, endpoint.get_secret()

    def _tell(self, owner, sub_keys):
        balance = client.get_balance()
        for sub_key, amount in zip(sub_keys, TOP_UPS):
            topups.top_up(owner, sub_key, amount, "Demo: welcome credit", uuid.uuid4().hex, balance.available)
        snapshot.refresh_snapshot()
        snapshot.refresh_balance()
        watched = KeySnapshot.objects.active().get(sub_key_id=sub_keys[-1].id)
        self._fire_alert(owner, watched)
        budget_requests.submit(
            watched, Decimal("20"), "We launch our beta next week and need more room.", ""
        )

    def _fire_alert(self, owner, watched):
        """A rule on one key whose threshold the key is already under: it fires on its first evaluation."""
        rule = AlertRule.objects.create(
            name=f"{watched.label or watched.key_id_short} running low",
            kind=AlertRule.Kind.KEY_REMAINING_UNDER,
            sub_key_id=watched.sub_key_id,
            key_label=watched.label,
            threshold=(watched.remaining + 5).quantize(Decimal("1")),
            created_by_name=owner.username,
        )
        audit_changes.record_added(owner, rule)
        alerts.evaluate_alert(rule, watched, client.get_balance(), daily_burn=Decimal(0))
