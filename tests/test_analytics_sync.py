"""End to end: usage made at the live simulator, mirrored by the sync engine, agrees on every analytics page."""

import csv
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.forms import first_of_month
from derouter import client as derouter_client
from mirror.models import KeySnapshot
from mirror.snapshot import refresh_snapshot
from mirror.sync import sync_key_usage

pytestmark = pytest.mark.django_db


def _own_costs_this_month(secret):
    """The costs the client itself sees this month, summed from /sub-key/usage-logs."""
    total, requests, page, month_start = Decimal(0), 0, 1, first_of_month(timezone.now().date())
    while True:
        logs = derouter_client.get_client_usage_logs(secret, page=page, limit=100)
        for log in logs.logs:
            if log.created_at.date() >= month_start:
                total += log.cost
                requests += 1
        if not logs.has_next:
            return total, requests
        page += 1


def test_synced_usage_gives_statements_and_analytics_the_clients_own_figures(owner_client, simulator, make_key):
    created = make_key(budget="20", label="Synced client")
    derouter_client.update_sub_key(created.id, display_multiplier=Decimal("3.7"))
    for cost in ("0.000123", "0.0451", "0.000001", "0.987654"):
        simulator.add_usage(created.id, cost, count=3)
    simulator.chat(created.secret.reveal(), count=2)
    refresh_snapshot()
    sync_key_usage(created.id)
    key = KeySnapshot.objects.get(sub_key_id=created.id)

    own_total, own_requests = _own_costs_this_month(created.secret.reveal())
    response = owner_client.get(f"/dashboard/keys/{key.sub_key_id}/statements/{timezone.now():%Y-%m}.csv")
    total_row = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[-1]
    assert total_row[0] == "total" and int(total_row[2]) == own_requests == 14
    assert Decimal(total_row[5]) == own_total

    html = owner_client.get("/dashboard/analytics/?period=7d&sort=label").content.decode()
    row = html[html.index("Synced client"):]
    row = row[: row.index("</tr>")]
    assert f"${own_total.quantize(Decimal('0.0001'))}" in row or f"${own_total.quantize(Decimal('0.01'))}" in row
