"""Hide margins means hidden: staff an owner has not allowed to see margins meet no real cost, no multiplier
and no margin on any console page, fragment or export: only what the customer is billed.

The walk resolves every console route of the URL conf with real ids from a seeded account (a key with a
multiplier and mirrored usage, a top-up, rules, a webhook and its delivery, a rotation, budget requests,
an export, an invitation), fetches each as a page and as an htmx fragment, and scans what comes back.
"""

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.invitations import create_invitation
from accounts.models import Role
from automation import webhooks
from automation.models import (
    AlertRule,
    Allowance,
    AutoTopUpRule,
    BudgetRequest,
    KeyExpiry,
    Rotation,
)
from exports.models import Export
from mirror.models import UsageRecord
from payments.codes import create_batch
from payments.models import CodeBatch, Order, Package

pytestmark = pytest.mark.django_db

MULTIPLIER = "1.7"
# Real costs whose figures (and sums) appear nowhere else on the pages, so finding one is a leak.
BIG_COST, SMALL_COST = "3.21", "0.0371"

# Words that label real cost, the multiplier or margin (as a label or a column), and the multiplier itself (×1.7).
FORBIDDEN_WORDS = [
    re.compile(r"real cost", re.I),
    re.compile(r"(?<![-\w/])margins?(?![-\w:/])", re.I),
    re.compile(r"multiplier", re.I),
    re.compile(r"cost_usd", re.I),
    re.compile(r"<th[^>]*>\s*Cost\s*</th>", re.I),
    re.compile(r"×\s*\d"),
]


def figure(text):
    """A decimal figure as it may be printed: with any trailing zeros, not as part of a longer number."""
    whole, _, places = text.partition(".")
    return re.compile(rf"(?<![\d.]){whole}\.{places}0*(?!\d)")


def walk(patterns, prefix="", namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            yield name, prefix + str(pattern.pattern), list(pattern.pattern.converters)


def console_routes():
    return [(name, params) for name, route, params in walk(get_resolver().url_patterns) if route.startswith("dashboard/")]


def signed_in(user):
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def owner_client(owner):
    return signed_in(owner)


@pytest.fixture
def staff_client(staff):
    return signed_in(staff)


@pytest.fixture
def seeded(owner, staff, owner_client, staff_client, make_key, simulator, sync_mirror):
    key = make_key("10", label="Acme Customer")
    edited = owner_client.post(
        reverse("console:key_edit", args=[key.id]), {"label": "Acme Customer", "rpm_limit": 60, "display_multiplier": MULTIPLIER}
    )
    assert edited.status_code in (200, 302)
    simulator.add_usage(key.id, BIG_COST, 1, inputTokens=1200, outputTokens=300)
    simulator.add_usage(key.id, SMALL_COST, 2, inputTokens=100, outputTokens=50)
    sync_mirror(key.id)
    topped_up = staff_client.post(
        reverse("console:key_topup", args=[key.id]),
        {"amount": "2", "note": "INV-7", "confirm": "1", "token": str(uuid.uuid4())},
        follow=True,
    )
    alert = AlertRule.objects.create(name="Spent out", kind=AlertRule.Kind.KEY_SPENT_OUT, sub_key_id=key.id, key_label="Acme Customer")
    auto_topup = AutoTopUpRule.objects.create(sub_key_id=key.id, name="Refill", threshold=Decimal("1"), amount=Decimal("5"))
    allowance = Allowance.objects.create(sub_key_id=key.id, period=Allowance.Period.MONTH, target=Decimal("10"))
    expiry = KeyExpiry.objects.create(sub_key_id=key.id, key_label="Acme Customer", expires_at=timezone.now() + timedelta(days=30))
    endpoint, _ = webhooks.create_endpoint("https://hooks.example.com/x", ["key.topped_up"])
    delivery = endpoint.deliveries.create(event_id=uuid.uuid4(), event_type="key.topped_up", body="{}")
    rotation = Rotation.objects.create(token=uuid.uuid4(), actor_name="olivia", old_sub_key_id=key.id, label="Acme Customer")
    waiting = BudgetRequest.objects.create(
        sub_key_id=key.id, key_label="Acme Customer", amount=Decimal("17"), multiplier=Decimal(MULTIPLIER)
    )
    BudgetRequest.objects.create(
        sub_key_id=key.id, key_label="Acme Customer", amount=Decimal("8.5"), multiplier=Decimal(MULTIPLIER),
        status=BudgetRequest.Status.DECLINED, decided_at=timezone.now(), decided_by_name="sam", decline_reason="not now",
    )
    export = Export.objects.create(kind=Export.Kind.LEDGER, user=staff, filename="ledger.csv")
    invitation = create_invitation("new@example.com", Role.STAFF, None, owner)
    code_batch, _ = create_batch(owner, 2, Decimal("5"), CodeBatch.Unit.CUSTOMER)
    package = Package.objects.create(name="Starter", price=Decimal("20.00"), currency="usd", credit=Decimal("17"))
    order = Order.objects.create(
        token=uuid.uuid4(), sub_key_id=key.id, key_label="Acme Customer", package=package, package_name="Starter",
        price=Decimal("20.00"), currency="usd", amount_minor=2000, credit=Decimal("17"), display_multiplier=Decimal(MULTIPLIER),
        amount_usd=Decimal("10"), state=Order.State.CREDITED,
    )
    month = timezone.now().strftime("%Y-%m")
    ids = {
        "sub_key_id": key.id,
        "month": month,
        "token": export.token,
        "user_id": staff.pk,
        "invitation_id": invitation.pk,
        "batch_id": code_batch.pk,
        "package_id": package.pk,
        "order_id": order.pk,
    }
    pks = {
        "automation:alert_rule_delete": alert.pk,
        "automation:auto_topup_delete": auto_topup.pk,
        "automation:allowance_delete": allowance.pk,
        "automation:expiry_cancel": expiry.pk,
        "automation:webhook_detail": endpoint.pk,
        "automation:webhook_toggle": endpoint.pk,
        "automation:webhook_delete": endpoint.pk,
        "automation:delivery_send_again": delivery.pk,
        "automation:rotation_detail": rotation.pk,
        "automation:rotation_finish": rotation.pk,
        "automation:request_approve": waiting.pk,
        "automation:request_decline": waiting.pk,
    }
    real_figures = [BIG_COST, SMALL_COST, MULTIPLIER]
    spent = sum(UsageRecord.objects.filter(key__sub_key_id=key.id).values_list("cost", flat=True))
    assert spent == Decimal(BIG_COST) + 2 * Decimal(SMALL_COST)
    real_figures += [format(spent.normalize(), "f"), format(spent.quantize(Decimal("0.01")), "f")]
    return {"key": key, "ids": ids, "pks": pks, "real_figures": real_figures, "topped_up": body_of(topped_up)}


def url_for(name, params, seeded):
    kwargs = {param: seeded["pks"][name] if param == "pk" else seeded["ids"][param] for param in params}
    return reverse(name, kwargs=kwargs)


def body_of(response):
    if response.streaming:
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def _in_context(match):
    text = match.string
    return text[max(match.start() - 60, 0): match.end() + 40].replace("\n", " ")


def leaks_in(text, real_figures):
    """Each forbidden word or real figure found, with the text around it."""
    patterns = FORBIDDEN_WORDS + [figure(value) for value in real_figures]
    return [_in_context(match) for pattern in patterns if (match := pattern.search(text))]


def test_the_walk_covers_every_console_route(seeded):
    for name, params in console_routes():
        url_for(name, params, seeded)  # fails with KeyError for a route the walk cannot fill in


def test_staff_without_margins_meet_no_real_cost_multiplier_or_margin_on_any_console_url(staff_client, seeded):
    leaks = {}
    for name, params in console_routes():
        url = url_for(name, params, seeded)
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = staff_client.get(url, **headers)
            found = leaks_in(body_of(response), seeded["real_figures"])
            if found:
                leaks[f"{url} {'(htmx)' if headers else ''}"] = found
    assert not leaks, "\n".join(f"{url}: {found}" for url, found in leaks.items())


@pytest.mark.parametrize(
    "query",
    [{}, {"client": "Acme Customer"}, {"limit": 100}],
)
def test_the_usage_log_and_its_csv_show_staff_only_what_the_customer_is_billed(staff_client, seeded, query):
    page = body_of(staff_client.get(reverse("console:usage_logs"), query))
    assert "Billed" in page and not leaks_in(page, seeded["real_figures"])
    csv_text = body_of(staff_client.get(reverse("console:usage_logs_csv"), query))
    header = csv_text.splitlines()[0].split(",")
    assert "billed" in header and "cost_usd" not in header and "multiplier" not in header
    assert not leaks_in(csv_text, seeded["real_figures"])


def test_staff_see_the_key_as_the_customer_sees_it(staff_client, seeded):
    key = seeded["key"]
    page = body_of(staff_client.get(reverse("console:key_detail", args=[key.id])))
    billed_spent = (Decimal(BIG_COST) + 2 * Decimal(SMALL_COST)) * Decimal(MULTIPLIER)
    assert f"${billed_spent.quantize(Decimal('0.01'))}" in page
    listed = body_of(staff_client.get(reverse("console:key_list")))
    assert f"${billed_spent.quantize(Decimal('0.01'))}" in listed


def test_an_owner_and_staff_allowed_margins_still_see_real_cost_and_the_multiplier(owner_client, staff_client, staff, seeded):
    key = seeded["key"]
    for browser in (owner_client,):
        page = body_of(browser.get(reverse("console:key_detail", args=[key.id])))
        assert "×1.7" in page
        logs = body_of(browser.get(reverse("console:usage_logs")))
        assert "Real cost" in logs
        header = body_of(browser.get(reverse("console:usage_logs_csv"))).splitlines()[0]
        assert "cost_usd" in header and "multiplier" in header
    staff.console_profile.can_see_margins = True
    staff.console_profile.save()
    assert "Real cost" in body_of(staff_client.get(reverse("console:usage_logs")))


def test_a_staff_top_up_answers_without_real_cost_or_multiplier(seeded):
    assert "INV-7" in seeded["topped_up"] or "Top-up" in seeded["topped_up"]
    assert not leaks_in(seeded["topped_up"], seeded["real_figures"])


def test_staff_approving_a_request_are_told_the_customers_amount_not_the_real_one(staff_client, seeded):
    waiting = BudgetRequest.objects.get(status=BudgetRequest.Status.PENDING)
    url = reverse("automation:request_approve", args=[waiting.pk])
    confirm = body_of(staff_client.get(url))
    assert "$17.00" in confirm and not figure("10.00").search(confirm)
    answer = body_of(staff_client.post(url, {"confirm": "1"}, follow=True))
    waiting.refresh_from_db()
    assert waiting.status in (BudgetRequest.Status.APPROVED, BudgetRequest.Status.CONFIRMING)
    assert "Approved: $17.00 in the customer" in answer
    assert not figure("10.00").search(answer) and not leaks_in(answer, seeded["real_figures"])
