"""Every page, as every kind of user, at desktop and phone sizes: axe-core, the Nu HTML checker, no sideways scroll.

To cover a new page, add a ``Visit`` to ``VISITS`` below. ``{key_id}`` in a path stands for a
Client Key that has usage, top-ups and audit events (and is the customer's key, mirrored, with a
statement for ``{last_month}``); the other ``{names}`` are the records ``_seed`` makes for the pages
that show one (see ``Seeded``). ``steps`` drive the page after it loads:
a string presses the link or button of that name (a dialog opener, "Reveal key", a submit),
a ``(label, value)`` pair fills that field, and ``CLOSE`` presses Escape to close a dialog.
The page is checked again after every press, and what it then shows is validated too.

The whole walk runs once per test module (one browser context per user and size) and the
tests below each report one kind of problem for every page at once. Every page is also opened
once in Chinese (see ``SIZES``): axe-core, the phone's sideways scroll and the lang attributes.
"""

import json
import re
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Error as PlaywrightError
from django.utils import timezone, translation
from django.utils.translation import gettext

from tests.helpers import ROOT, new_page, sign_in
from tests.untranslated import find_untranslated

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Visit:
    who: str  # "owner", "staff", "customer", "anonymous" or "two-factor" (password given, code not yet)
    path: str
    status: int = 200
    steps: tuple = ()
    # A simulator fault active during the visit, e.g. {"mode": "error", "path": "/balance", "status": 503}.
    fault: dict | None = None


CLOSE = "Escape"

VISITS = [
    Visit("anonymous", "/"),
    Visit("anonymous", "/login/"),
    Visit("anonymous", "/portal/login/"),
    Visit("anonymous", "/no-such-page/", status=404),
    Visit("anonymous", "/invite/{invitation_token}/", steps=("Create my account",)),
    Visit("anonymous", "/login/", steps=(("Username", "nobody"), ("Password", "not-the-password"), "Sign in")),
    Visit("anonymous", "/portal/login/", steps=(("Client Key", "not-a-key"), "Sign in")),
    Visit("anonymous", "/portal/start/", steps=(("Redemption code", "not-a-code"), "Make my key")),
    # Signed in with a password, the second factor still to come.
    Visit("two-factor", "/login/code/", steps=(("Code", "12"), "Sign in")),
    Visit("owner", "/dashboard/"),
    Visit("owner", "/dashboard/keys/", steps=(
        "Top up", ("Amount", "0"), "Review the top-up", ("Amount", "2"), ("Reference", "INV-A11Y"),
        "Review the top-up", CLOSE,
        "Edit", ("Requests per minute", "0"), "Save", CLOSE,
    )),
    Visit("owner", "/dashboard/keys/?sort=-budget"),
    Visit("owner", "/dashboard/keys/?q=nothing-matches-this"),
    Visit("owner", "/dashboard/keys/new/", steps=(
        ("Budget", "0"), "Create key", ("Label", "Survey second key"), ("Budget", "5"), "Create key",
    )),
    Visit("owner", "/dashboard/keys/{key_id}/", steps=("Edit", CLOSE, "Reveal full key")),
    Visit("owner", "/dashboard/keys/{key_id}/edit/"),
    Visit("owner", "/dashboard/keys/{key_id}/topup/", steps=(
        ("Amount", "1.5"), ("Reference", "INV-A11Y-2"), "Review the top-up", "Top up $1.50",
    )),
    Visit("owner", "/dashboard/keys/{key_id}/delete/"),
    Visit("owner", "/dashboard/keys/{key_id}/reclaim/"),
    Visit("owner", "/dashboard/keys/no-such-key/", status=404),
    Visit("owner", "/dashboard/topups/"),
    Visit("owner", "/dashboard/logs/"),
    Visit("owner", "/dashboard/audit/"),
    Visit("owner", "/dashboard/analytics/"),
    Visit("owner", "/dashboard/analytics/?start={month_start}&end={month_end}"),
    Visit("owner", "/dashboard/analytics/?period=custom&start=2026-13-40", status=400),
    Visit("owner", "/dashboard/keys/{key_id}/statements/{last_month}/"),
    Visit("owner", "/dashboard/keys/{key_id}/statements/not-a-month/", status=400),
    Visit("owner", "/dashboard/sync/"),
    Visit("owner", "/dashboard/reconciliation/"),
    Visit("owner", "/dashboard/upstream/"),
    Visit("owner", "/dashboard/exports/{ledger_export_token}/"),
    Visit("owner", "/dashboard/keys/{deleted_key_id}/"),
    Visit("owner", "/dashboard/keys/{deleted_key_id}/statements/{last_month}/"),
    Visit("owner", "/dashboard/keys/new/", status=503, fault={"mode": "error", "path": "/balance", "status": 503, "times": 10}),
    Visit("owner", "/dashboard/branding/", steps=(("Accent colour", "#ffd43b"), "Save branding")),
    Visit("owner", "/logout/"),
    Visit("owner", "/dashboard/automation/"),
    Visit("owner", "/dashboard/automation/alerts/"),
    Visit("owner", "/dashboard/automation/alerts/history/"),
    Visit("owner", "/dashboard/automation/auto-topups/"),
    Visit("owner", "/dashboard/automation/allowances/"),
    Visit("owner", "/dashboard/automation/expiries/"),
    Visit("owner", "/dashboard/automation/webhooks/"),
    Visit("owner", "/dashboard/automation/webhooks/{webhook_id}/"),
    Visit("owner", "/dashboard/automation/rotations/{rotation_id}/"),
    Visit("owner", "/dashboard/automation/requests/"),
    Visit("owner", "/dashboard/automation/requests/{budget_request_id}/approve/"),
    Visit("staff", "/dashboard/automation/requests/{budget_request_id}/approve/"),
    Visit("owner", "/dashboard/automation/keys/{key_id}/rotate/"),
    Visit("owner", "/dashboard/users/", steps=(("Email address", "new.person@example.com"), "Make an invitation link")),
    Visit("owner", "/dashboard/users/{staff_user_id}/"),
    Visit("owner", "/dashboard/account/two-factor/"),
    Visit("owner", "/dashboard/money-in/codes/"),
    Visit("owner", "/dashboard/money-in/codes/new/", steps=(
        ("Number of codes", "0"), "Make the codes", ("Number of codes", "2"), ("Each code is worth", "5"), "Make the codes",
    )),
    Visit("owner", "/dashboard/money-in/codes/{code_batch_id}/"),
    Visit("owner", "/dashboard/money-in/cards/", steps=(("Price", "0.1"), "Add the package")),
    Visit("owner", "/dashboard/money-in/orders/"),
    Visit("staff", "/dashboard/"),
    Visit("staff", "/dashboard/keys/", steps=("Top up",)),
    Visit("staff", "/dashboard/keys/{key_id}/"),
    Visit("staff", "/dashboard/keys/new/", status=403),
    Visit("staff", "/dashboard/branding/", status=403),
    Visit("staff", "/dashboard/users/", status=403),
    Visit("staff", "/dashboard/analytics/"),
    Visit("staff", "/dashboard/keys/{key_id}/statements/{last_month}/"),
    Visit("staff", "/dashboard/account/two-factor/"),
    Visit("staff", "/dashboard/money-in/codes/"),
    Visit("staff", "/dashboard/money-in/codes/new/", status=403),
    Visit("staff", "/dashboard/money-in/orders/"),
    Visit("customer", "/portal/", steps=("Reveal key",)),
    Visit("customer", "/portal/logs/", steps=("Set time zone",)),
    Visit("customer", "/portal/requests/", steps=("Send the request",)),
    Visit("customer", "/portal/statements/"),
    Visit("customer", "/portal/redeem/", steps=(("Redemption code", "not-a-code"), "Redeem")),
    Visit("customer", "/portal/pay/"),
    Visit("customer", "/portal/pay/{order_token}/"),
    Visit("customer", "/portal/pay/{order_token}/receipt/"),
    Visit("customer", "/portal/statements/{last_month}/"),
    Visit("customer", "/portal/statements/not-a-month/", status=400),
    Visit("customer", "/portal/exports/{portal_export_token}/"),
    Visit("customer", "/portal/no-such-page/", status=404),
]

# A phone context is "mobile" so that, as on a real phone, a page without a viewport meta tag lays out 980px wide.
SIZES = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
    # Dark mode follows the system setting: its colours must pass axe-core too.
    "desktop-dark": {"viewport": {"width": 1280, "height": 800}, "color_scheme": "dark"},
    # The Chinese pages as they first load (the steps press English names; a Chinese browser's
    # Accept-Language chooses the page's language). Each page once, the visits shared out in turn
    # between Simplified at desktop and Traditional on a phone: both scripts and both widths for
    # half the time of two more walks. Their HTML is validated in both scripts by tests/test_translated_pages.py.
    "desktop-zh-hans": {"viewport": {"width": 1280, "height": 800}, "locale": "zh-CN"},
    "phone-zh-hant": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "locale": "zh-TW"},
}
# The lang attribute each Chinese size's pages carry, and which visits (by number, even or odd) each takes.
CHINESE_SIZES = {"desktop-zh-hans": "zh-Hans", "phone-zh-hant": "zh-Hant"}
CHINESE_SHARE = {"desktop-zh-hans": 0, "phone-zh-hant": 1}
# axe-core's impact levels that fail the test; "moderate" and "minor" findings are left to review.
FAILING_IMPACTS = {"serious", "critical"}
VNU_JAR = ROOT / ".venv" / "vnu" / "vnu.jar"

OWNER_PASSWORD = "owner-pass-1234"
STAFF_PASSWORD = "staff-pass-1234"
TWO_FACTOR_PASSWORD = "tara-pass-1234"


@dataclass
class Survey:
    """What the walk found: problems per kind, and the HTML the server sent for each visit."""

    axe: list
    sideways_scroll: list
    statuses: list
    html_dir: Path
    wide_tables: list
    faint_fields: list
    langs: list


def _last_month_start():
    from analytics.forms import first_of_month

    return first_of_month(first_of_month(timezone.now().date()) - timedelta(days=1))


def _mirror_as_created_long_ago(simulator, sub_key_id):
    """Mirror a key with its usage, created two months ago (in derouter too) so that last month has a statement."""
    from tests.mirror_helpers import mirror_from_simulator

    # The pages refresh the mirror from derouter's key list, so the simulator must say it too.
    with sqlite3.connect(simulator.state_path) as state_db:
        created = timezone.now() - timedelta(days=70)
        state_db.execute("UPDATE sub_keys SET created_at = ? WHERE id = ?", (f"{created:%Y-%m-%dT%H:%M:%SZ}", sub_key_id))
    mirror_from_simulator(sub_key_id)


def _seed(simulator, make_key):
    """Users, a Client Key with usage of varied costs, and ledger and audit rows for the pages to show.

    Returns the Client Key's secret and the values of the ``{names}`` in the visits' paths.
    """
    from django.contrib.auth import get_user_model
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.invitations import create_invitation, make_token
    from accounts.models import ConsoleProfile, Role
    from automation.models import BudgetRequest, Rotation
    from automation.webhooks import create_endpoint
    from ledger.models import AuditEvent, Outcome, TopUp
    from derouter import client as derouter_client
    from exports.models import Export

    users = get_user_model().objects
    owner = users.create_user("olivia", password=OWNER_PASSWORD)
    ConsoleProfile.objects.create(user=owner, role=Role.OWNER)
    staff = users.create_user("sam", password=STAFF_PASSWORD)
    ConsoleProfile.objects.create(user=staff, role=Role.STAFF)
    with_app = users.create_user("tara", password=TWO_FACTOR_PASSWORD)
    ConsoleProfile.objects.create(user=with_app, role=Role.OWNER)
    TOTPDevice.objects.create(user=with_app, name="app", confirmed=True)

    key = make_key("1865.3215", label="Survey Customer Ltd")
    secret = key.secret.reveal()
    for cost, tokens in (("0.202901", 12_345), ("1.5", 980), ("0.000012", 3)):
        simulator.add_usage(key.id, cost, count=11, inputTokens=tokens, outputTokens=tokens // 3)
    last_month = _last_month_start()
    for day in (2, 9, 20):
        simulator.add_usage(
            key.id, "0.42", count=3, model="claude-opus-4-1",
            createdAt=f"{last_month + timedelta(days=day):%Y-%m-%d}T10:00:00Z",
        )
    simulator.chat(secret, count=2)
    _mirror_as_created_long_ago(simulator, key.id)
    gone = make_key("3", label="Former Customer")
    simulator.add_usage(gone.id, "0.3", createdAt=f"{last_month + timedelta(days=4):%Y-%m-%d}T10:00:00Z")
    _mirror_as_created_long_ago(simulator, gone.id)
    derouter_client.delete_sub_key(gone.id)
    nearly_empty = make_key("1", label="Nearly Empty Co")
    simulator.add_usage(nearly_empty.id, "0.95")
    for amount, outcome in ((Decimal("1135"), Outcome.OK), (Decimal("236.647"), Outcome.UNKNOWN)):
        TopUp.objects.create(
            token=uuid.uuid4(), actor=owner, actor_name="olivia", sub_key_id=key.id,
            key_label="Survey Customer Ltd", key_id_short=key.key_id, amount=amount, note="INV-1",
            outcome=outcome, budget_before=Decimal("730.3215"),
        )
    AuditEvent.objects.create(
        actor=owner, actor_name="olivia", action=AuditEvent.Action.CREATE, sub_key_id=key.id,
        key_label="Survey Customer Ltd", key_id_short=key.key_id,
        changes={"budget": [None, "1865.3215"]}, outcome=Outcome.OK,
    )
    endpoint, _ = create_endpoint("https://hooks.example.com/derouter", ["key.low", "key.topped_up"], description="Billing")
    rotation = Rotation.objects.create(
        token=uuid.uuid4(), actor=owner, actor_name="olivia", old_sub_key_id=nearly_empty.id,
        old_key_id_short=nearly_empty.key_id, label="Nearly Empty Co", moved_budget=Decimal("0.05"),
        status=Rotation.Status.DELETE_UNKNOWN, message="derouter did not answer the delete.",
    )
    ledger_export = Export.objects.create(
        kind=Export.Kind.LEDGER, user=owner, filename="derouter-topups.csv", status=Export.Status.RUNNING,
        rows_done=2_500, rows_total=12_000,
    )
    invitation = create_invitation("new.staff@example.com", Role.STAFF, None, owner)
    budget_request = BudgetRequest.objects.create(
        sub_key_id=key.id, key_label="Survey Customer Ltd", key_id_short=key.key_id, amount=Decimal("50"),
        multiplier=Decimal("2"), note="Launch week", email="customer@example.com",
    )
    code_batch = _seed_codes(owner, key)
    month_end = timezone.now().date()
    return secret, {
        "key_id": key.id,
        "deleted_key_id": gone.id,
        "last_month": f"{last_month:%Y-%m}",
        "month_start": f"{month_end - timedelta(days=13):%Y-%m-%d}",
        "month_end": f"{month_end:%Y-%m-%d}",
        "webhook_id": endpoint.pk,
        "rotation_id": rotation.pk,
        "ledger_export_token": ledger_export.token,
        "invitation_token": make_token(invitation),
        "staff_user_id": staff.pk,
        "budget_request_id": budget_request.pk,
        "code_batch_id": code_batch.pk,
        "order_token": _seed_card_order(key).token,
    }


def _seed_card_order(key):
    """Card payments set up (keys never used here: no page below asks Stripe) and a credited order of the customer's."""
    from payments.models import Order, Package, ReceiptNumber, StripeSettings

    row = StripeSettings.load()
    row.enabled, row.publishable_key = True, "pk_test_survey"
    row.set_secret_key("sk_test_survey_not_used")
    row.set_webhook_secret("whsec_survey_not_used")
    row.save()
    package = Package.objects.create(name="Starter", price=Decimal("20.00"), currency="usd", credit=Decimal("25"))
    order = Order.objects.create(
        token=uuid.uuid4(), sub_key_id=key.id, key_label="Survey Customer Ltd", key_id_short=key.key_id, package=package,
        package_name="Starter", price=Decimal("20.00"), currency="usd", amount_minor=2000, credit=Decimal("25"),
        display_multiplier=Decimal(1), amount_usd=Decimal("25"), payment_intent_id="pi_survey", state=Order.State.CREDITED,
        paid_at=timezone.now(), credited_at=timezone.now(),
    )
    order.receipt_number = ReceiptNumber.objects.create(order=order).pk
    order.save(update_fields=["receipt_number"])
    return order


def _seed_codes(owner, key):
    """A batch of codes: one redeemed by the customer's key, one revoked, one unused."""
    from payments import codes
    from payments.models import CodeBatch, RedemptionCode

    batch, _ = codes.create_batch(owner, 3, Decimal("25"), CodeBatch.Unit.CUSTOMER, None, "Survey shop")
    redeemed, revoked, _ = batch.codes.all()
    RedemptionCode.objects.filter(pk=redeemed.pk).update(
        state=RedemptionCode.State.REDEEMED, sub_key_id=key.id, key_label="Survey Customer Ltd",
        key_id_short=key.key_id, claimed_at=timezone.now(), redeemed_at=timezone.now(), amount_usd=Decimal("25"),
    )
    codes.revoke(owner, batch, revoked)
    return batch


def _start_portal_export(page):
    """A usage export under way for this browser's portal session (exports belong to their session)."""
    from django.conf import settings

    from exports.models import Export

    session_key = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == settings.SESSION_COOKIE_NAME)
    export = Export.objects.create(
        kind=Export.Kind.PORTAL_USAGE, session_key=session_key, filename="usage.csv",
        status=Export.Status.RUNNING, rows_done=900, rows_total=6_000,
    )
    return {"portal_export_token": export.token}


def _sign_in_as(page, live_server, who, secret):
    if who == "owner":
        sign_in(page, live_server, "olivia", OWNER_PASSWORD)
    elif who == "staff":
        sign_in(page, live_server, "sam", STAFF_PASSWORD)
    elif who == "two-factor":
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", "tara")
        page.fill("#id_password", TWO_FACTOR_PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(re.compile(r"/login/code/$"))
    elif who == "customer":
        page.goto(f"{live_server.url}/portal/login/")
        page.fill("#id_client_key", secret)
        page.click("main button[type=submit]")
        page.wait_for_url(re.compile(r"/portal/$"))
        return _start_portal_export(page)
    return {}


def _serious_violations(page):
    results = Axe().run(page)
    return [
        f"{violation['id']} ({violation['impact']}): " + "; ".join(node["html"][:160] for node in violation["nodes"][:3])
        for violation in results.response["violations"]
        if violation["impact"] in FAILING_IMPACTS
    ]


def _sideways_scroll(page):
    """How many pixels wider than the screen the page is, or 0.

    Against the screen's width, not window.innerWidth: a phone zooms out to show a page that is
    too wide (or has no viewport meta tag), and innerWidth grows with it, hiding the overflow.
    """
    return page.evaluate("document.documentElement.scrollWidth") - page.viewport_size["width"]


# Each visible table whose columns are wider than the box it sits in: [name, pixels hidden].
WIDE_TABLES = """() => Array.from(document.querySelectorAll("table")).filter((table) => table.offsetParent !== null)
  .map((table) => {
    const box = table.parentElement;
    const name = (table.querySelector("caption") || {}).textContent || box.getAttribute("aria-label") || table.id || "a table";
    return [name.trim(), Math.max(table.scrollWidth, box.scrollWidth) - box.clientWidth];
  }).filter(([, hidden]) => hidden > 1)"""

# Each visible text field and code block with its text colour, its own background colour and the nearest
# opaque background behind it (the page's when nothing between is painted).
FIELD_COLOURS = """() => {
  const painted = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const colour = getComputedStyle(node).backgroundColor;
      if (colour && colour !== "transparent" && !/rgba\\(.*, 0\\)$/.test(colour)) return colour;
    }
    return getComputedStyle(document.documentElement).backgroundColor || "rgb(255, 255, 255)";
  };
  const fields = "input:not([type]), input[type=text], input[type=email], input[type=url], input[type=search], input[type=password], input[type=number], textarea, code, pre, kbd";
  return Array.from(document.querySelectorAll(fields)).filter((field) => field.offsetParent !== null)
    .map((field) => [field.outerHTML.slice(0, 100), getComputedStyle(field).color, painted(field)]);
}"""


def _channels(colour):
    return [float(part) for part in re.findall(r"[\d.]+", colour)[:3]]


def _contrast(foreground, background):
    """The WCAG contrast ratio of two CSS rgb() colours."""

    def luminance(colour):
        linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in _channels(colour)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _check(page, where, size, survey):
    survey.axe.extend(f"{where} at {size}: {violation}" for violation in _serious_violations(page))
    if size.startswith("phone"):
        overflow = _sideways_scroll(page)
        if overflow > 0:
            survey.sideways_scroll.append(f"{where} is {overflow}px wider than a 390px phone")
    if size == "desktop":
        survey.wide_tables.extend(
            f"{where}: the table {name!r} is {hidden}px wider than its box at 1280px" for name, hidden in page.evaluate(WIDE_TABLES)
        )
    if size.endswith("dark"):
        for html, colour, background in page.evaluate(FIELD_COLOURS):
            ratio = _contrast(colour, background)
            if ratio < 4.5:
                survey.faint_fields.append(f"{where} in dark mode: {html} is {colour} on {background} ({ratio:.1f}:1)")


# Code blocks (commands, snippets, reports) on a Chinese page that no element marks as English:
# a screen reader would read them with a Chinese voice.
ENGLISH_UNMARKED = """() => Array.from(document.querySelectorAll("pre"))
  .filter((element) => !element.closest('[lang="en"]')).map((element) => element.outerHTML.slice(0, 100))"""


def _check_lang(page, where, lang, survey):
    """The page says it is in ``lang``, and the English blocks in it (code, commands) say they are English."""
    page_lang = page.evaluate("document.documentElement.lang")
    if page_lang != lang:
        survey.langs.append(f"{where}: <html lang={page_lang!r}>, expected {lang!r}")
    survey.langs.extend(f"{where} in {lang}: {html} is English without lang=\"en\"" for html in page.evaluate(ENGLISH_UNMARKED))


def _step_in(step, lang):
    """A walk's step as a page in ``lang`` names it (a button's name, a field's label); None when ours has no such msgid."""
    with translation.override(lang.lower()):
        if step == CLOSE:
            return step
        name = step[0] if isinstance(step, tuple) else step
        shown = gettext(name)
    if shown == name:
        return None
    return (shown, step[1]) if isinstance(step, tuple) else shown


def _press(page, name):
    """Click the first link or button with this accessible name, inside an open dialog if there is one."""
    scope = page.locator("dialog[open]") if page.locator("dialog[open]").count() else page
    target = scope.get_by_role("link", name=name, exact=True).or_(scope.get_by_role("button", name=name, exact=True))
    target.first.click()
    page.wait_for_load_state("networkidle")


def _fill(page, label, value):
    scope = page.locator("dialog[open]") if page.locator("dialog[open]").count() else page
    # A field, not a section a heading of the same words labels (兑换码 is both in Chinese).
    scope.get_by_label(label).and_(scope.locator("input, select, textarea")).first.fill(value)


def _save_html(survey, name, html):
    (survey.html_dir / f"{name}.html").write_text(html)


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "index"


def _walks(visit, number, who, size):
    """Whether the walk as ``who`` at ``size`` opens this visit (the Chinese sizes share the visits out)."""
    return visit.who == who and (size not in CHINESE_SHARE or number % 2 == CHINESE_SHARE[size])


def _walk(browser, live_server, simulator, visits, secret, names, survey):
    for who in sorted({visit.who for visit in visits}):
        for size, options in SIZES.items():
            if not any(_walks(visit, number, who, size) for number, visit in enumerate(visits)):
                continue
            page = new_page(browser, **options)
            try:
                names_of_session = {**names, **_sign_in_as(page, live_server, who, secret)}
                for number, visit in enumerate(visits):
                    if not _walks(visit, number, who, size):
                        continue
                    path = visit.path.format(**names_of_session)
                    where = f"{who} {path}"
                    name = f"{number:02d}-{who}-{_slug(path)}"
                    if visit.fault:
                        simulator.inject(**visit.fault)
                    try:
                        response = page.goto(live_server.url + path)
                        page.wait_for_load_state("networkidle")
                    finally:
                        if visit.fault:
                            simulator.clear_faults()
                    if response.status != visit.status:
                        survey.statuses.append(f"{where} answered {response.status}, expected {visit.status}")
                    if size == "desktop":
                        _save_html(survey, name, response.text())
                    lang = CHINESE_SIZES.get(size)
                    if lang:
                        _check_lang(page, where, lang, survey)
                    _check(page, where, size, survey)
                    for number_of_step, step in enumerate(visit.steps, start=1):
                        if lang:
                            # The same steps in Chinese: buttons and fields by their Chinese names. A name
                            # built with a value (the confirm button's amount) ends the walk of this page there.
                            step = _step_in(step, lang)
                            if step is None:
                                break
                        if isinstance(step, tuple):
                            _fill(page, *step)
                            continue
                        if step == CLOSE:
                            page.keyboard.press("Escape")
                            page.locator("dialog[open]").wait_for(state="detached")
                            continue
                        try:
                            _press(page, step)
                        except PlaywrightError as error:
                            # Reported with the rest of the walk, which goes on to the next page.
                            survey.statuses.append(f"{where} at {size}: pressing {step!r} failed: {str(error).splitlines()[0]}")
                            break
                        _check(page, f"{where} after pressing {step!r}", size, survey)
                        if lang:
                            # The key list behind a dialog shows keys other tests made, with English labels.
                            # (Imported here: bench/screenshots.py reads this module's VISITS without Django set up.)
                            from mirror.models import KeySnapshot

                            labels = set(KeySnapshot.objects.exclude(label="").values_list("label", flat=True))
                            survey.langs.extend(f"{where} after pressing {step!r}: {text!r} is English"
                                                for text in find_untranslated(page.content(), names=labels))
                        if size == "desktop":
                            # What the page shows now, as the browser has it (after any htmx swap).
                            _save_html(survey, f"{name}-step{number_of_step}", page.content())
            finally:
                page.context.close()


@pytest.fixture(scope="module")
def survey(browser, live_server, simulator, django_db_setup, django_db_blocker, tmp_path_factory):
    """Walk every listed page once; the tests below read what it found."""
    from derouter import client as derouter_client

    def make_key(budget, label):
        return derouter_client.create_sub_key(Decimal(budget), label=label)

    result = Survey(
        axe=[], sideways_scroll=[], statuses=[], html_dir=tmp_path_factory.mktemp("pages"), wide_tables=[], faint_fields=[],
        langs=[],
    )
    # The walk's requests reach the database from the live server's thread, outside any test.
    with django_db_blocker.unblock():
        secret, names = _seed(simulator, make_key)
        _walk(browser, live_server, simulator, VISITS, secret, names, result)
    return result


def test_every_page_answers_with_its_expected_status(survey):
    assert not survey.statuses, "\n".join(survey.statuses)


def test_no_page_or_dialog_has_serious_or_critical_axe_violations(survey):
    assert not survey.axe, f"{len(survey.axe)} axe-core violations:\n" + "\n".join(survey.axe)


def test_no_page_scrolls_sideways_on_a_phone(survey):
    assert not survey.sideways_scroll, "\n".join(survey.sideways_scroll)


def test_every_table_fits_its_box_at_desktop_width(survey):
    assert not survey.wide_tables, "\n".join(survey.wide_tables)


def test_every_text_field_and_code_block_reads_against_its_background_in_dark_mode(survey):
    assert not survey.faint_fields, "\n".join(survey.faint_fields)


def test_every_chinese_page_has_the_right_lang_attributes(survey):
    assert not survey.langs, "\n".join(survey.langs)


def nu_errors(html_dir):
    """The Nu HTML checker's errors in every page saved in ``html_dir``, in one run of the checker."""
    assert VNU_JAR.exists(), f"the Nu HTML checker is missing at {VNU_JAR}: bin/test installs it (bin/setup-vnu)"
    assert sorted(html_dir.glob("*.html")), "no page was saved"
    run = subprocess.run(
        ["java", "-jar", str(VNU_JAR), "--errors-only", "--format", "json", str(html_dir)],
        capture_output=True, text=True, timeout=300,
    )
    messages = json.loads(run.stderr or "{}").get("messages", [])
    return [
        f"{Path(message.get('url', '')).name}:{message.get('lastLine', '?')}: {message['message']}"
        for message in messages
        if message.get("type") in ("error", "non-document-error")
    ]


def test_every_page_is_valid_html(survey):
    checked = sorted(survey.html_dir.glob("*.html"))
    errors = nu_errors(survey.html_dir)
    assert not errors, f"{len(errors)} Nu HTML checker errors in {len(checked)} pages:\n" + "\n".join(errors)

