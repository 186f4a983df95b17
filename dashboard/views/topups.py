"""Top-ups: the top-up form with its confirm step, the ledger and its CSV export."""

import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event
from django.utils.translation import ngettext_lazy
from django.utils.translation import gettext_lazy as _

from accounts.roles import console_required
from analytics.permissions import can_see_margins
from dashboard.forms import LEDGER_PAGE_SIZE, LedgerQueryForm, TopUpForm
from dashboard.ledger_csv import csv_columns, filtered_topups, ledger_csv_row, write_ledger_export
from dashboard.topups import TopUpNotAllowed, find_attempt, get_cap_left_today, review, settle_key, top_up
from dashboard.upstream import get_sub_key_now, get_sub_key_or_404, upstream_write_deadline
from dashboard.views import SUBKEYS_CHANGED_EVENT
from derouter.client import DerouterError
from exports.models import Export
from ledger.formtokens import TokenUsedElsewhere
from ledger.models import Outcome, TopUp
from lib.csv_export import csv_download
from lib.forms import describe_refused_export
from lib.htmx import render_page_or_fragment, wants_fragment
from lib.money import exact_usd, usd
from lib.paging import pager_for_page
from mirror.models import KeySnapshot
from mirror.reads import as_sub_key, get_mirrored_balance


def _render_topup(request, sub_key, form, *, step="form", status=200, **context):
    context = {"key": sub_key, "form": form, "step": step, **context}
    if "cap_left" not in context:
        context["cap_left"] = get_cap_left_today(request.user)
    return render_page_or_fragment(request, "dashboard/topup.html", "dashboard/_topup.html", context, status)


def _render_result(request, sub_key, topup, *, repeated=False, current_key=None, status=200):
    """Show how a top-up ended: its ledger row and the key's budget now."""
    context = {
        "key": sub_key,
        "topup": topup,
        "budget_after": None if topup.budget_before is None else topup.budget_before + topup.amount,
        "repeated": repeated,
        "current_key": current_key,
        "step": "result",
    }
    response = render_page_or_fragment(request, "dashboard/topup.html", "dashboard/_topup.html", context, status)
    if topup.outcome in (Outcome.OK, Outcome.UNKNOWN):
        trigger_client_event(response, SUBKEYS_CHANGED_EVENT)
    return response


def _render_token_refusal(request, refusal):
    """A 400 for a form token first used on another key or form: nothing was sent."""
    context = {"message": refusal.message}
    return render_page_or_fragment(
        request, "dashboard/form_used_elsewhere.html", "dashboard/_form_used_elsewhere.html", context, 400
    )


def _get_form(request, sub_key, data=None, **kwargs):
    """The top-up form; whoever may see margins may type what the customer gets instead of what they pay."""
    multiplier = sub_key.display_multiplier if can_see_margins(request.user) else None
    return TopUpForm(data, multiplier=multiplier, **kwargs)


def _get_fresh_form(form):
    """A new form with the same amount and note and a new one-time token."""
    return TopUpForm(
        multiplier=form.multiplier,
        initial={
            "amount": form.cleaned_data["amount"],
            "note": form.cleaned_data["note"],
            "token": uuid.uuid4(),
        }
    )


def _get_key_now_or_none(sub_key_id):
    """The key as derouter reports it now, to show beside an outcome; None when derouter cannot say."""
    try:
        return get_sub_key_now(sub_key_id)
    except DerouterError:
        return None


def _get_key_of_step(sub_key_id):
    """The key as the mirror holds it; one not mirrored yet is read from derouter (and mirrored), else Http404."""
    snapshot = KeySnapshot.objects.active().filter(sub_key_id=str(sub_key_id)).first()
    return as_sub_key(snapshot) if snapshot else get_sub_key_or_404(sub_key_id)


@console_required
@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request")
@upstream_write_deadline
def key_topup(request, sub_key_id):
    """Add budget to a Client Key: form, confirm step, then one upstream call per form.

    Until money moves, the key as the mirror holds it is enough (no upstream key list at any
    step): the money service reads the key from derouter under its lock, one call whatever
    the number of keys, before its PUT.
    """
    sub_key = _get_key_of_step(sub_key_id)
    if request.method != "POST":
        # The available balance up front (as last read), so nobody types an amount only to learn it is too much.
        return _render_topup(request, sub_key, _get_form(request, sub_key, initial={"token": uuid.uuid4()}),
                             balance=get_mirrored_balance())

    form = _get_form(request, sub_key, request.POST)
    if not form.is_valid():
        return _render_topup(request, sub_key, form, status=400)
    amount, note, token = (form.cleaned_data[name] for name in ("amount", "note", "token"))

    try:
        earlier = find_attempt(token, sub_key)
    except TokenUsedElsewhere as refusal:
        return _render_token_refusal(request, refusal)
    if earlier is not None:
        # A resubmitted form whose first attempt is unsettled: settle it from the budget derouter reports now.
        try:
            settle_key(sub_key.id)
        except DerouterError:
            pass
        earlier.refresh_from_db()
        return _render_result(request, sub_key, earlier, repeated=True, current_key=_get_key_now_or_none(sub_key.id))
    if "edit" in request.POST:
        return _render_topup(request, sub_key, form)

    if "confirm" not in request.POST:
        checked = review(request.user, amount)
        for field, message in checked.errors.items():
            form.add_error(field, message)
        if not checked.is_allowed:
            return _render_topup(request, sub_key, form, status=400, balance=checked.balance, cap_left=checked.cap_left)
        context = {
            "balance": checked.balance,
            "cap_left": checked.cap_left,
            "amount": amount,
            "new_budget": sub_key.budget + amount,
            "customer_gets": None if form.multiplier is None else amount * form.multiplier,
            "available_after": checked.balance.available - amount,
        }
        return _render_topup(request, sub_key, form, step="confirm", **context)

    # Not read again here: derouter refuses what is not available, and a read would be a
    # third round trip in a row (the service reads the key, then writes).
    balance = get_mirrored_balance()
    try:
        attempt = top_up(request.user, sub_key, amount, note, token, None)
    except TopUpNotAllowed as refusal:
        form.add_error("amount", refusal.message)
        return _render_topup(request, sub_key, form, status=400, balance=balance)
    except TokenUsedElsewhere as refusal:
        return _render_token_refusal(request, refusal)

    topup = attempt.topup
    if attempt.repeated:
        return _render_result(request, sub_key, topup, repeated=True, current_key=_get_key_now_or_none(sub_key.id))
    if topup.outcome == Outcome.REFUSED:
        # Refused by derouter (sent), or not sent at all because derouter could not be read or the key was busy.
        status = 400 if topup.sent_at else 503
        return _render_topup(request, sub_key, _get_fresh_form(form), status=status, balance=balance, refused=topup)
    if topup.outcome == Outcome.UNKNOWN:
        return _render_result(request, sub_key, topup, current_key=_get_key_now_or_none(sub_key.id), status=503)

    # A toast on the next page, or (htmx) beside the dialog this result closes. Not on the top-up
    # page itself: there the result takes the form's place and says it, and a toast said it twice.
    on_own_page = wants_fragment(request) and urlsplit(request.htmx.current_url or "").path == request.path
    if not on_own_page:
        messages.success(
            request,
            _("Added %(amount)s to %(key_id)s: its budget went from %(before)s to %(after)s.") % {"amount": exact_usd(amount), "key_id": sub_key.label or sub_key.key_id, "before": usd(topup.budget_before), "after": usd(topup.budget_before + amount)},
        )
    if wants_fragment(request):
        return _render_result(request, sub_key, topup, current_key=None)
    return redirect("console:key_detail", sub_key_id=sub_key.id)


def _get_ledger_query(request):
    """The ledger filter from the query string, its key choices, and the filtered rows."""
    query_form = LedgerQueryForm(request.GET)
    query = query_form.get_query()
    query_form.set_key_choices(_get_ledger_key_choices())
    return query_form, query, filtered_topups(query["sub_key_id"], query["outcome"])


def _get_ledger_key_choices():
    """Every key the ledger knows, with the label it was topped up under (no upstream call)."""
    labels = {}
    known = TopUp.objects.order_by().values_list("sub_key_id", "key_label", "key_id_short").distinct()
    for sub_key_id, label, key_id_short in known:
        labels[sub_key_id] = f"{label} ({key_id_short})" if label and key_id_short else label or key_id_short or sub_key_id
    return sorted(labels.items(), key=lambda item: item[1].casefold())


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def ledger(request):
    """Every top-up, newest first, filtered by key and outcome; the key page links here per key."""
    query_form, query, topups = _get_ledger_query(request)
    page = Paginator(topups, LEDGER_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"query_form": query_form, "query": query, "page": page, "pager": pager_for_page(request, page, ngettext_lazy("%(count)s top-up", "%(count)s top-ups", "count"))}
    status = 400 if query_form.errors else 200
    return render_page_or_fragment(request, "dashboard/ledger.html", "dashboard/_ledger.html", context, status)


def _csv_rows(topups, show_margins):
    yield csv_columns(show_margins)
    for topup in topups.iterator(chunk_size=500):
        yield ledger_csv_row(topup, show_margins)


@console_required
@require_http_methods(["GET", "HEAD"])
def ledger_csv(request):
    """The filtered ledger as CSV: streamed when short, else written to a file by the worker."""
    query_form, query, topups = _get_ledger_query(request)
    if query_form.errors:
        # A filter that was not understood must not widen the download to every top-up.
        return render(request, "400.html", {"message": describe_refused_export(query_form)}, status=400)
    filename = f"derouter-topups-{timezone.now():%Y%m%d-%H%M%S}.csv"
    if topups.count() > settings.EXPORT_STREAM_MAX_ROWS:
        params = {"sub_key_id": str(query["sub_key_id"] or ""), "outcome": query["outcome"] or ""}
        export = Export.objects.create(kind=Export.Kind.LEDGER, user=request.user, params=params, filename=filename)
        write_ledger_export(export.pk)
        return redirect("console:export_status", token=export.token)
    return csv_download(_csv_rows(topups, can_see_margins(request.user)), filename)
