"""Console pages for card payments: Stripe's keys, the packages on offer, orders, refunds and retries."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext_noop, ngettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.utils.translation import gettext_lazy as _

from accounts.roles import console_required, is_owner, owner_required
from analytics.permissions import can_see_margins
from ledger import audit
from ledger.models import AuditEvent, Outcome
from derouter.client import DerouterError
from lib import stored_text
from lib.paging import pager_for_page
from payments import orders, stripe_api, tasks
from payments.forms import PackageForm, StripeSettingsForm
from payments.models import Order, Package, StripeSettings

ORDERS_PAGE_SIZE = 50


def _settings_initial(row):
    return {"enabled": row.enabled, "publishable_key": row.publishable_key, "daily_orders_per_key": row.daily_orders_per_key}


def _render_settings(request, form, package_form, status=200):
    row = StripeSettings.load()
    context = {
        "form": form,
        "package_form": package_form,
        "stripe_settings": row,
        "packages": Package.objects.all(),
        "webhook_url": request.build_absolute_uri(reverse("stripe_webhook")),
    }
    return render(request, "payments/card_settings.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
@owner_required
def card_settings(request):
    """Turn card payments on with Stripe's keys (each secret checked with Stripe, then never shown again)."""
    row = StripeSettings.load()
    if request.method == "GET":
        return _render_settings(request, StripeSettingsForm(initial=_settings_initial(row)), PackageForm())
    form = StripeSettingsForm(request.POST)
    if not form.is_valid():
        return _render_settings(request, form, PackageForm(), status=400)
    # Copied: add_error() takes a field out of cleaned_data.
    data = dict(form.cleaned_data)
    if data["secret_key"]:
        try:
            account_id = stripe_api.check_keys(data["secret_key"])
        except stripe_api.StripeRefused as refusal:
            form.add_error("secret_key", _("Stripe did not accept this key: %(message)s") % {"message": refusal.message})
        except stripe_api.StripeUnavailable as error:
            form.add_error("secret_key", str(error))
    if data["enabled"] and not (data["secret_key"] or row.secret_key_encrypted):
        form.add_error("secret_key", _("Save the secret key before turning card payments on."))
    if data["enabled"] and not (data["webhook_secret"] or row.webhook_secret_encrypted):
        form.add_error("webhook_secret", _("Save the webhook signing secret before turning card payments on: without it no payment is credited."))
    if data["enabled"] and not data["publishable_key"]:
        form.add_error("publishable_key", _("The payment page needs the publishable key."))
    if form.errors:
        return _render_settings(request, form, PackageForm(), status=400)
    changes = {}
    for name in ("enabled", "publishable_key", "daily_orders_per_key"):
        if getattr(row, name) != data[name]:
            changes[name.replace("_", " ")] = (getattr(row, name), data[name])
            setattr(row, name, data[name])
    if data["secret_key"]:
        row.account_id = account_id
        changes["secret key"] = ("(saved)" if row.secret_key_encrypted else "", "(replaced)")
        row.set_secret_key(data["secret_key"])
    if data["webhook_secret"]:
        changes["webhook secret"] = ("(saved)" if row.webhook_secret_encrypted else "", "(replaced)")
        row.set_webhook_secret(data["webhook_secret"])
    row.save()
    if changes:
        audit.record(request.user, AuditEvent.Action.MONEY_IN, Outcome.OK, changes=changes,
                     message=stored_text.note(gettext_noop("Card payments")))
    messages.success(request, _("Card payments are on.") if row.is_ready else _("Saved. Card payments are off."))
    return redirect("payments:card_settings")


@require_POST
@owner_required
def package_add(request):
    form = PackageForm(request.POST)
    if not form.is_valid():
        return _render_settings(request, StripeSettingsForm(initial=_settings_initial(StripeSettings.load())), form, status=400)
    package = Package.objects.create(**form.cleaned_data)
    audit.record(request.user, AuditEvent.Action.MONEY_IN, Outcome.OK,
                 changes={"package": (None, str(package))}, message=stored_text.note(gettext_noop("Card payments: package added")))
    messages.success(request, _("Added the package %(name)s.") % {"name": package.name})
    return redirect("payments:card_settings")


@require_POST
@owner_required
def package_toggle(request, package_id):
    package = get_object_or_404(Package, pk=package_id)
    package.active = not package.active
    package.save(update_fields=["active"])
    audit.record(request.user, AuditEvent.Action.MONEY_IN, Outcome.OK,
                 changes={f"package {package.name}": (not package.active, package.active)},
                 message=stored_text.note(gettext_noop("Card payments: package on offer")))
    messages.success(request, (_("%(name)s is on offer.") if package.active else _("%(name)s is withdrawn.")) % {"name": package.name})
    return redirect("payments:card_settings")


@require_GET
@console_required
def order_list(request):
    """Every order, newest first, with its state; owners refund, anyone may retry a stuck credit."""
    state = request.GET.get("state", "")
    rows = Order.objects.all()
    if state in Order.State.values:
        rows = rows.filter(state=state)
    page = Paginator(rows, ORDERS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "pager": pager_for_page(request, page, ngettext_lazy("%(count)s order", "%(count)s orders", "count")),
        "states": Order.State.choices,
        "state": state,
        "can_refund": is_owner(request.user),
        "show_margins": can_see_margins(request.user),
    }
    return render(request, "payments/orders.html", context)


@require_POST
@owner_required
def order_refund(request, order_id):
    order = get_object_or_404(Order, pk=order_id)
    try:
        result = orders.refund(order, request.user)
    except stripe_api.StripeRefused as refusal:
        messages.error(request, _("Stripe refused the refund: %(message)s") % {"message": refusal.message})
    except stripe_api.StripeUnavailable as error:
        messages.error(request, _("Nothing was refunded: %(error)s") % {"error": error})
    else:
        messages.success(request, stored_text.read(result))
    return redirect("payments:orders")


@require_POST
@console_required
def order_retry(request, order_id):
    """Try the credit of a paid order again now (or ask Stripe about an unpaid one)."""
    order = get_object_or_404(Order, pk=order_id)
    try:
        order = orders.fulfil_from_stripe(order) if order.state == Order.State.CREATED else orders.credit_order(order)
    except (stripe_api.StripeUnavailable, stripe_api.StripeRefused) as error:
        messages.error(request, _("Stripe could not be asked: %(error)s") % {"error": error})
    except DerouterError as error:
        messages.error(request, _("derouter could not be read: %(error)s") % {"error": error})
    except orders.EventMismatch as mismatch:
        messages.error(request, _("The PaymentIntent does not match the order (%(mismatch)s): nothing credited.") % {"mismatch": mismatch.read()})
    else:
        messages.info(request, _("Order %(token)s: %(state)s.") % {"token": order.receipt_number or order.token, "state": order.get_state_display().lower()})
    return redirect(request.POST.get("next") if request.POST.get("next", "").startswith("/dashboard/") else "payments:orders")


@require_POST
@owner_required
def money_in_check(request):
    """Ask the worker for a money-in check now (Stripe is read there, not in this request)."""
    tasks.check_money_in_now(request.user.get_username())
    messages.info(request, _("Money-in check asked for: reload to see its result."))
    return redirect("console:reconciliation")
