"""Console pages for rules: alerts (and their history), auto top-ups, allowances, expiries."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import ngettext_lazy
from django.utils.translation import gettext_lazy

from accounts.roles import console_required, owner_required
from automation.audit_changes import audited_values, record_added, record_changed, record_removed
from automation.forms import AlertRuleForm, AllowanceForm, AutoTopUpRuleForm, KeyExpiryForm, KeyPreselectForm
from automation.models import Alert, AlertRule, Allowance, AutoTopUpRule, KeyExpiry
from automation.views.common import get_key_choices, get_key_names, get_snapshot
from lib.htmx import render_page_or_fragment
from lib.paging import pager_for_page
from work.models import TaskRun

HISTORY_PAGE_SIZE = 50
RECENT_RUNS = 10


def _get_label(sub_key_id):
    snapshot = get_snapshot(sub_key_id)
    return (snapshot.label or snapshot.key_id_short) if snapshot else ""


def _get_preselected(request):
    return KeyPreselectForm(request.GET).get_initial()


def _render_rules(request, template, form, status=200, **context):
    return render(request, template, {"form": form, "key_names": get_key_names(), **context}, status=status)


def _get_posted_rule(request, form_class, template, **context):
    """(the cleaned data of a valid post, None), else (None, the page: a blank form on GET, the errors on POST)."""
    key_choices = get_key_choices()
    if request.method != "POST":
        form = form_class(key_choices=key_choices, initial=_get_preselected(request))
        return None, _render_rules(request, template, form, **context)
    form = form_class(request.POST, key_choices=key_choices)
    if not form.is_valid():
        return None, _render_rules(request, template, form, status=400, **context)
    return form.cleaned_data, None


@console_required
@require_http_methods(["GET", "HEAD"])
def overview(request):
    """What runs without a click: rule counts, the request queue, and the worker's latest runs."""
    context = {
        "alert_rules": AlertRule.objects.count(),
        "auto_topups": AutoTopUpRule.objects.count(),
        "allowances": Allowance.objects.count(),
        "expiries": KeyExpiry.objects.filter(status=KeyExpiry.Status.SCHEDULED).count(),
        "recent_alerts": Alert.objects.all()[:5],
        "runs": TaskRun.objects.filter(name__startswith="automation.")[:RECENT_RUNS],
    }
    return render(request, "automation/overview.html", context)


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
def alert_rules(request):
    """Alert rules: the list and a form for a new one."""
    data, page = _get_posted_rule(request, AlertRuleForm, "automation/alert_rules.html", rules=AlertRule.objects.all())
    if data is None:
        return page
    rule = AlertRule.objects.create(
        name=data["name"], kind=data["kind"], sub_key_id=data["sub_key_id"], key_label=_get_label(data["sub_key_id"]),
        threshold=data["threshold"], email_to=data["email_to"], created_by_name=request.user.get_username(),
    )
    record_added(request.user, rule)
    messages.success(request, gettext_lazy("Added the alert rule “%(name)s”. The worker checks it every minute.") % {"name": rule.name})
    return redirect("automation:alert_rules")


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def alert_history(request):
    """Every alert fired, newest first, with its email and webhook deliveries."""
    alerts = Alert.objects.prefetch_related("deliveries__endpoint")
    page = Paginator(alerts, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "pager": pager_for_page(request, page, ngettext_lazy("%(count)s alert", "%(count)s alerts", "count"))}
    return render_page_or_fragment(request, "automation/alert_history.html", "automation/_alert_history.html", context)


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
def auto_topups(request):
    data, page = _get_posted_rule(request, AutoTopUpRuleForm, "automation/auto_topups.html", rules=AutoTopUpRule.objects.all())
    if data is None:
        return page
    rule = AutoTopUpRule.objects.create(
        sub_key_id=data["sub_key_id"], key_label=_get_label(data["sub_key_id"]), name=data["name"],
        threshold=data["threshold"], amount=data["amount"], max_times=data["max_times"],
        monthly_cap=data["monthly_cap"], created_by_name=request.user.get_username(),
    )
    record_added(request.user, rule)
    messages.success(request, gettext_lazy("Added the auto top-up “%(name)s”.") % {"name": data['name']})
    return redirect("automation:auto_topups")


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
def allowances(request):
    data, page = _get_posted_rule(request, AllowanceForm, "automation/allowances.html", rows=Allowance.objects.all())
    if data is None:
        return page
    existing = Allowance.objects.filter(sub_key_id=data["sub_key_id"]).first()
    allowance, created = Allowance.objects.update_or_create(
        sub_key_id=data["sub_key_id"],
        defaults={
            "key_label": _get_label(data["sub_key_id"]), "period": data["period"], "target": data["target"],
            "enabled": True, "created_by_name": request.user.get_username(),
        },
    )
    _record_saved(request.user, existing, allowance)
    messages.success(request, gettext_lazy("Added the allowance.") if created else gettext_lazy("Changed the key's allowance."))
    return redirect("automation:allowances")


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
def expiries(request):
    data, page = _get_posted_rule(request, KeyExpiryForm, "automation/expiries.html", rows=KeyExpiry.objects.all())
    if data is None:
        return page
    snapshot = get_snapshot(data["sub_key_id"])
    existing = KeyExpiry.objects.filter(sub_key_id=data["sub_key_id"]).first()
    expiry, _ = KeyExpiry.objects.update_or_create(
        sub_key_id=data["sub_key_id"],
        defaults={
            "key_label": snapshot.label if snapshot else "",
            "key_id_short": snapshot.key_id_short if snapshot else "",
            "secret_sha256": snapshot.secret_sha256 if snapshot else "",
            "expires_at": data["expires_at"], "remind_days": data["remind_days"],
            "notify_email": data["notify_email"], "reminder_sent_at": None,
            "status": KeyExpiry.Status.SCHEDULED, "message": "", "created_by_name": request.user.get_username(),
        },
    )
    _record_saved(request.user, existing, expiry)
    messages.success(request, gettext_lazy("The key expires at %(expires_at)s UTC.") % {"expires_at": f"{data['expires_at']:%Y-%m-%d %H:%M}"})
    return redirect("automation:expiries")


def _record_saved(user, existing, saved):
    """Audit an update_or_create: an add, or the fields it changed (``existing`` read before)."""
    if existing is None:
        record_added(user, saved)
    else:
        record_changed(user, audited_values(existing), saved)


RULE_MODELS = {
    "alert": (AlertRule, "automation:alert_rules"),
    "auto-topup": (AutoTopUpRule, "automation:auto_topups"),
    "allowance": (Allowance, "automation:allowances"),
    "expiry": (KeyExpiry, "automation:expiries"),
}


@owner_required
@require_POST
def rule_delete(request, kind, pk):
    """Remove a rule (an expiry is cancelled, so its record stays)."""
    model, list_url = RULE_MODELS[kind]
    rule = get_object_or_404(model, pk=pk)
    if isinstance(rule, KeyExpiry):
        if rule.status == KeyExpiry.Status.SCHEDULED:
            before = audited_values(rule)
            if KeyExpiry.objects.filter(pk=pk, status=KeyExpiry.Status.SCHEDULED).update(status=KeyExpiry.Status.CANCELLED):
                rule.status = KeyExpiry.Status.CANCELLED
                record_changed(request.user, before, rule)
            messages.success(request, gettext_lazy("Cancelled the expiry."))
        else:
            messages.error(request, gettext_lazy("This expiry is %(status)s and cannot be cancelled.") % {"status": rule.get_status_display().lower()})
        return redirect(list_url)
    rule.delete()
    record_removed(request.user, rule)
    messages.success(request, gettext_lazy("Removed the rule."))
    return redirect(list_url)
