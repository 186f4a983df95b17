"""Client Keys: list, create, key page, edit, reveal and delete."""

import re
import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Sum
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, reselect, reswap, retarget, trigger_client_event
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.roles import console_required, is_owner, owner_required
from analytics.panels import get_key_analytics
from analytics.permissions import can_see_margins, get_key_figures, hide_margin_changes
from branding.doors import get_doors
from branding.models import Branding
from dashboard import keywrites
from ledger import audit
from dashboard.forms import (
    PriceForm,
    DEFAULT_KEY_SORT,
    KeyCreateForm,
    KeyEditForm,
    KeyListQueryForm,
    KeyLogsQueryForm,
    MultiplierPreviewForm,
)
from dashboard.key_rows import (
    MARGIN_SORT_COLUMNS,
    get_days_left,
    get_key_row,
    get_key_urls,
    get_list_pager,
    get_list_url,
    get_row_markup,
    get_row_url_patterns,
    render_key_row,
    render_sort_headers,
    search_key_list,
)
from dashboard.upstream import (
    get_live_balance,
    get_sub_key_now,
    get_sub_key_or_404,
    upstream_write_deadline,
)
from dashboard.views import SUBKEYS_CHANGED_EVENT
from dashboard.views.deleted_key import deleted_key_detail
from derouter import conventions as upstream_conventions
from derouter.client import DerouterError
from ledger.formtokens import TokenUsedElsewhere
from ledger.models import AuditEvent, Outcome, TopUp
from lib import stored_text
from lib.htmx import render_page_or_fragment, wants_fragment
from lib.money import exact_usd, usd
from lib.paging import CountedPaginator, make_pager, page_summary
from mirror import reconcile
from mirror import snapshot as mirror_snapshot
from mirror.key_store import get_summary, secret_digest
from mirror.models import DailyRollup, KeySnapshot, UsageRecord
from mirror.reads import (
    as_sub_key,
    get_summary_after_first_sync_request,
    get_key_freshness,
    get_snapshot_or_404,
    get_usage_freshness,
)

KEYS_PER_PAGE = 25
# The key page's budget block: htmx asks the page for it once the page is shown (see _render_live_budget).
LIVE_BUDGET_TARGET = "key-budget"
# The key page's edit dialog fetches the form only when it opens; there the form posts as a
# plain form, so the saved key's page shows the changes (the key list's dialog posts in place).
KEY_PAGE_EDIT_TARGET = "edit-dialog-body"
HISTORY_ROWS = 20
PORTAL_LOGIN_PATH = "/portal/login/"
# A search this long that starts like a key is a pasted secret, not part of a label.
FULL_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_\-]{20,200}")
# The preview's example amount for a key that has spent nothing yet.
PREVIEW_SAMPLE_SPENT = Decimal(10)
def _get_safe_search(query):
    """The search with a pasted full key replaced by its shortened form (found by its digest in the snapshot).

    A full key must not travel on in a URL, an access log or the browser's
    history: the search form posts, and this is what goes into the URL.
    """
    if not FULL_KEY_SHAPE.fullmatch(query):
        return query
    shortened = KeySnapshot.objects.filter(secret_sha256=secret_digest(query)).values_list("key_id_short", flat=True)
    return shortened.first() or ""


def _settle_unsettled_writes():
    """Writes whose outcome is still open are settled from derouter's key list: one call, only when there are any.

    The worker does the same every minute; if derouter cannot answer now, the page serves the snapshot.
    Returns whether any was settled (the snapshot has then changed).
    """
    try:
        settled = keywrites.resolve_unsettled_writes()
    except DerouterError:
        return False
    if settled:
        mirror_snapshot.record_write_answer(None)
    return bool(settled)


def _get_reconciliation(snapshot, cost):
    """Mirrored real cost (the sum of the key's rollup costs) against the spend derouter reports."""
    mirrored = reconcile.as_mirrored_cost(cost)
    return {"mirrored": mirrored, "difference": reconcile.difference(snapshot, mirrored)}


def _get_quick_start(secret, request):
    branding = Branding.load()
    return {
        "inference_base": branding.inference_base,
        "doors": get_doors(branding),
        "portal_url": request.build_absolute_uri(PORTAL_LOGIN_PATH),
        "secret": secret,
    }


def _get_multiplier_preview(sub_key, multiplier):
    """What the client sees of this key's money under a multiplier."""
    sample_spent = sub_key.spent if sub_key.spent > 0 else PREVIEW_SAMPLE_SPENT
    return {
        "multiplier": multiplier,
        "is_sample": sub_key.spent <= 0,
        "spent": sample_spent,
        "spent_shown": sample_spent * multiplier,
        "budget": sub_key.budget,
        "budget_shown": sub_key.budget * multiplier,
    }


def _render_secret_page(request, template, context):
    """Render a page that carries a full key: never stored by a browser or proxy."""
    response = render(request, template, context)
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


def _get_edit_form(sub_key, data=None):
    initial = {
        "label": sub_key.label,
        "rpm_limit": sub_key.rpm_limit,
        "display_multiplier": sub_key.display_multiplier,
    }
    conventions = upstream_conventions.current()
    # Where derouter keeps a markup only at creation, a re-price is a rotation to a new key.
    return KeyEditForm(data, initial=initial).leave_out_fixed(conventions, markup_settable=conventions.multiplier_after_creation)


def _get_create_form(data=None):
    conventions = upstream_conventions.current()
    markup_settable = conventions.multiplier != upstream_conventions.NEVER
    return KeyCreateForm(data).leave_out_fixed(conventions, markup_settable=markup_settable)


def _render_edit_page(request, sub_key, form, status=200):
    """The edit form: its own page, or for htmx the fragment the key list's dialog shows."""
    context = {"key": sub_key, "form": form, "preview": _get_multiplier_preview(sub_key, sub_key.display_multiplier),
               "conventions": upstream_conventions.current(),
               "posts_in_place": wants_fragment(request) and request.htmx.target != KEY_PAGE_EDIT_TARGET}
    return render_page_or_fragment(request, "dashboard/key_edit.html", "dashboard/_key_edit_form.html", context, status)


def _render_outcome_unknown(request, sub_key, write, action):
    """A write that may or may not have happened: say so, with the key as derouter reports it now."""
    context = {"key": sub_key, "write": write, "action": action, "current": write.state}
    return render(request, "dashboard/key_outcome_unknown.html", context, status=503)


def _render_edit_done(request, sub_key, message, level=messages.SUCCESS):
    """For htmx: how the edit ended, in a fragment that closes the dialog it lands in; a toast says it."""
    messages.add_message(request, level, message)
    return render(request, "dashboard/_key_edit_form.html",
                  {"key": sub_key, "done_message": message, "done_warning": level == messages.WARNING})


def _get_changed_fields(sub_key, cleaned_data):
    """Field name: (before, after) for each edited value that differs from the key's."""
    before = {
        "label": sub_key.label,
        "rpm_limit": sub_key.rpm_limit,
        "display_multiplier": sub_key.display_multiplier,
    }
    return {name: (before[name], cleaned_data[name]) for name in before
            if name in cleaned_data and cleaned_data[name] != before[name]}


def _render_price_preview(request):
    """The create form's price as typed: what the customer sees, what your balance pays, your margin (or why not)."""
    form = PriceForm(request.GET)
    price = form.cleaned_data.get("price") if form.is_valid() else None
    return render(request, "dashboard/_price_preview.html", {"price": price, "price_form": form})


def _render_multiplier_preview(request, sub_key):
    """The preview fragment for a multiplier being typed; an invalid one shows why."""
    form = MultiplierPreviewForm(request.GET)
    context = {"preview_form": form}
    if form.is_valid():
        context["preview"] = _get_multiplier_preview(sub_key, form.cleaned_data["display_multiplier"])
    return render(request, "dashboard/_multiplier_preview.html", context)


@console_required
@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request")
def key_list(request):
    """The Client Keys table: search, sort and page the key snapshot in SQL (no upstream call).

    The search box posts; the answer's URL (a redirect, or HX-Push-Url for
    htmx) carries the search with any full key in it shortened.
    """
    summary = get_summary_after_first_sync_request()
    submitted = KeyListQueryForm(request.POST if request.method == "POST" else request.GET).get_query()
    query = {**submitted, "q": _get_safe_search(submitted["q"])}
    show_margins = can_see_margins(request.user)
    if not show_margins and query["sort"].removeprefix("-") in MARGIN_SORT_COLUMNS:
        query["sort"] = DEFAULT_KEY_SORT
    is_new_search = request.method == "POST" or query["q"] != submitted["q"]
    if is_new_search:
        query["page"] = 1
    list_url = get_list_url(**query)
    if is_new_search and not request.htmx:
        return redirect(list_url)
    if _settle_unsettled_writes():
        summary = get_summary()
    if query["q"]:
        page = Paginator(search_key_list(query), KEYS_PER_PAGE).get_page(query["page"])
        total_keys = KeySnapshot.objects.active().count()
    else:
        # Every active key: the summary row has counted them (counting 20,000 took 0.5 ms).
        total_keys = summary.key_count
        page = CountedPaginator(search_key_list(query), KEYS_PER_PAGE, total_keys).get_page(query["page"])
    url_patterns = get_row_url_patterns()
    days_left = get_days_left(page.object_list, query["sort"])
    show_edit = is_owner(request.user)
    row_markup = get_row_markup()
    context = {
        "query": query,
        "page": page,
        "rows": mark_safe("".join(
            render_key_row(
                get_key_row(as_sub_key(snapshot), url_patterns, days_left.get(snapshot.pk)), show_edit, show_margins, row_markup
            )
            for snapshot in page.object_list
        )),
        "total_keys": total_keys,
        "refresh_url": list_url,
        "sort_headers": render_sort_headers(query, show_margins),
        "pager": get_list_pager(query, page, total_keys),
    }
    response = render_page_or_fragment(request, "dashboard/key_list.html", "dashboard/_keys.html", context)
    if is_new_search:
        response["HX-Push-Url"] = list_url
    return response


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
@upstream_write_deadline
def key_create(request):
    """Create a Client Key priced by the customer's amount, your cost and the markup; its secret shown once.

    The price (what the customer sees, what your balance pays, your margin) shows as it is typed
    (htmx asks this view for the preview fragment) and, without JavaScript, on "Show the price".
    """
    if request.method != "POST":
        if request.htmx and "preview" in request.GET:
            return _render_price_preview(request)
        balance = get_live_balance()
        return render(request, "dashboard/key_create.html", {"form": _get_create_form(), "balance": balance})

    form = _get_create_form(request.POST)
    if not form.is_valid():
        return render(request, "dashboard/key_create.html", {"form": form}, status=400)
    balance = get_live_balance()
    budget = form.cleaned_data["budget"]
    price = form.cleaned_data.get("price")
    if budget > balance.available:
        form.add_error("budget", _("Only %(available)s is available; the budget cannot be more.") % {"available": usd(balance.available)})
        return render(request, "dashboard/key_create.html", {"form": form, "balance": balance}, status=400)
    if "edit" in request.POST:
        return render(request, "dashboard/key_create.html", {"form": form, "balance": balance, "price": price})
    if budget > settings.CONFIRM_BUDGET_ABOVE and "confirm" not in request.POST:
        # A large budget is said back in words before any money moves.
        context = {"form": form, "budget": budget, "balance": balance, "available_after": balance.available - budget,
                   "price": price}
        return render(request, "dashboard/key_create_confirm.html", context)

    label, rpm_limit = form.cleaned_data["label"], form.cleaned_data["rpm_limit"]
    multiplier = form.cleaned_data["display_multiplier"]
    try:
        write = keywrites.create_key(
            request.user, token=form.cleaned_data["token"], label=label, budget=budget, rpm_limit=rpm_limit,
            display_multiplier=multiplier,
        )
    except TokenUsedElsewhere as refusal:
        return render(request, "dashboard/form_used_elsewhere.html", {"message": refusal.message}, status=400)
    if write.repeated:
        return render(request, "dashboard/key_create_repeated.html", {"attempt": write.event})
    if write.is_unknown:
        context = {"label": label, "budget": budget, "write": write, "recent_keys": write.recent_keys}
        return render(request, "dashboard/key_create_unknown.html", context, status=503)
    if write.is_refused:
        # The failed attempt used up its token: offer the form again with a new one.
        form = _get_create_form({**request.POST.dict(), "token": str(uuid.uuid4())})
        form.is_valid()
        if write.was_sent:
            form.add_error(None, _("derouter refused the key: %(message)s") % {"message": stored_text.read(write.failure.message)})
        else:
            form.add_error(None, _("%(message)s No key was created; try again in a moment.") % {"message": stored_text.read(write.failure.message)})
        status = 400 if write.was_sent else 503
        return render(request, "dashboard/key_create.html", {"form": form, "balance": balance}, status=status)

    created = write.created
    context = {"created": created, "price": price, **_get_quick_start(created.secret.reveal(), request)}
    if multiplier != 1:
        context.update(multiplier=multiplier, multiplier_failure=write.markup_failure)
    context["not_applied"] = _describe_not_applied(write.not_applied)
    context["multiplier_not_kept"] = "display_multiplier" in write.not_applied
    return _render_secret_page(request, "dashboard/key_created.html", context)


def _render_live_budget(request, snapshot):
    """The key's budget block as derouter reports it now, after settling any write still open.

    A write settled here changed what the rest of the page shows: the page is then reloaded (once:
    a write is settled only once).
    """
    settled = _settle_unsettled_writes()
    try:
        sub_key = get_sub_key_now(snapshot.sub_key_id)
    except DerouterError:
        sub_key, unreachable = as_sub_key(snapshot), True
    else:
        unreachable = False
    context = {
        "key": sub_key or as_sub_key(snapshot),
        "live": sub_key is not None and not unreachable,
        "unreachable": unreachable,
        "gone": sub_key is None,
    }
    show_margins = can_see_margins(request.user)
    context.update(
        row=get_key_row(context["key"], get_row_url_patterns()),
        preview=_get_multiplier_preview(context["key"], context["key"].display_multiplier),
        figures=get_key_figures(context["key"], show_margins),
        show_margins=show_margins,
    )
    response = render(request, "dashboard/_key_budget.html", context)
    if settled:
        response["HX-Refresh"] = "true"
    return response


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request", "HX-Target")
def key_detail(request, sub_key_id):
    """One key from the snapshot: details, usage, reconciliation, its mirrored requests, top-ups, audit events.

    The page answers from the mirror at once; htmx then asks it for the key's budget as
    derouter reports it now (see _render_live_budget).
    """
    snapshot = get_snapshot_or_404(sub_key_id, deleted_too=True)
    if snapshot.is_deleted:
        return deleted_key_detail(request, snapshot, HISTORY_ROWS)
    if wants_fragment(request) and request.htmx.target == LIVE_BUDGET_TARGET:
        return _render_live_budget(request, snapshot)
    sub_key = as_sub_key(snapshot)
    logs_query = KeyLogsQueryForm(request.GET).get_query()
    show_margins = can_see_margins(request.user)
    # Counted from the daily rollups, so paging costs the same at any number of requests; their
    # cost, summed in the same query, is what the reconciliation compares with derouter's spend.
    sums = DailyRollup.objects.filter(key=snapshot).aggregate(requests=Sum("requests", default=0), cost=Sum("cost"))
    count = sums["requests"]
    # Rows are stored with their rollups, so a key the rollups count no request of has none to read.
    rows = UsageRecord.objects.filter(key=snapshot).order_by("-created_at", "-id") if count else []
    logs = CountedPaginator(rows, logs_query["limit"], count).get_page(logs_query["page"])
    context = {
        "key": sub_key,
        "row": get_key_row(sub_key, get_row_url_patterns()),
        "logs": logs,
        "logs_query": logs_query,
        "usage_freshness": get_usage_freshness(snapshot),
        "pager": make_pager(
            request,
            page=logs.number,
            pages=logs.paginator.num_pages,
            summary=page_summary(
                ngettext("%(count)s request", "%(count)s requests", count) % {"count": count},
                logs.number,
                logs.paginator.num_pages,
            ),
            base=reverse("console:key_detail", args=[sub_key.id]),
            params={"limit": logs_query["limit"]},
        ),
        "page_sizes": KeyLogsQueryForm.base_fields["limit"].choices,
    }
    if wants_fragment(request):
        return render(request, "dashboard/_key_logs.html", context)
    context.update(
        key_freshness=get_key_freshness(snapshot),
        key_urls=get_key_urls(sub_key.id),
        topups=TopUp.objects.filter(sub_key_id=sub_key.id)[:HISTORY_ROWS],
        audit_rows=[
            (event, hide_margin_changes(audit.describe_changes(event), show_margins))
            for event in AuditEvent.objects.filter(sub_key_id=sub_key.id)[:HISTORY_ROWS]
        ],
        figures=get_key_figures(sub_key, show_margins),
        preview=_get_multiplier_preview(sub_key, sub_key.display_multiplier),
        key_analytics=get_key_analytics(sub_key.id, show_margins, key=snapshot),
        reconciliation=_get_reconciliation(snapshot, sums["cost"]),
        reclaim_supported=upstream_conventions.current().reclaim_supported,
    )
    return render(request, "dashboard/key_detail.html", context)


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request", "HX-Target")
@upstream_write_deadline
def key_edit(request, sub_key_id):
    """Edit label, rpm limit and display multiplier; sends only what changed."""
    sub_key = get_sub_key_or_404(sub_key_id)
    if request.method != "POST":
        if request.htmx and "display_multiplier" in request.GET:
            return _render_multiplier_preview(request, sub_key)
        return _render_edit_page(request, sub_key, _get_edit_form(sub_key))

    form = _get_edit_form(sub_key, request.POST)
    if not form.is_valid():
        return _render_edit_page(request, sub_key, form, status=400)
    changes = _get_changed_fields(sub_key, form.cleaned_data)
    if not changes:
        if wants_fragment(request):
            return _render_edit_done(request, sub_key, _("Nothing changed."), level=messages.INFO)
        messages.info(request, _("Nothing changed."))
        return redirect("console:key_detail", sub_key_id=sub_key.id)

    write = keywrites.edit_key(request.user, sub_key, changes)
    if write.is_unknown:
        response = _render_outcome_unknown(request, sub_key, write, "edit")
        if wants_fragment(request):
            # The warning replaces the page's content, not just the dialog the form was in.
            retarget(response, "main")
            reswap(response, "outerHTML")
            reselect(response, "main")
        return response
    if write.is_refused and write.failure.is_gone:
        messages.error(request, _("The key %(key_id)s no longer exists at derouter; nothing was changed.") % {"key_id": sub_key.key_id})
        # From the dialog too, go to the list with a full page load, so the message shows.
        list_url = reverse("console:key_list")
        return HttpResponseClientRedirect(list_url) if request.htmx else redirect(list_url)
    if write.is_refused and write.was_sent:
        form.add_error(None, _("derouter refused the change: %(message)s") % {"message": stored_text.read(write.failure.message)})
        return _render_edit_page(request, sub_key, form, status=400)
    if write.is_refused:
        form.add_error(None, _("%(message)s Try again in a moment.") % {"message": stored_text.read(write.failure.message)})
        return _render_edit_page(request, sub_key, form, status=503)

    not_applied = _describe_not_applied(write.not_applied)
    if not_applied:
        saved = _("derouter answered, but did not keep every change to %(name)s: %(fields)s.") % {
            "name": sub_key.label or sub_key.key_id, "fields": "; ".join(not_applied)}
        level = messages.WARNING
    else:
        saved = _("Saved the changes to %(name)s.") % {"name": sub_key.label or sub_key.key_id}
        level = messages.SUCCESS
    if wants_fragment(request):
        response = _render_edit_done(request, sub_key, saved, level=level)
        trigger_client_event(response, SUBKEYS_CHANGED_EVENT)
        return response
    messages.add_message(request, level, saved)
    return redirect("console:key_detail", sub_key_id=sub_key.id)


FIELD_NAMES = {"label": _("label"), "rpm_limit": _("requests per minute"), "display_multiplier": _("display multiplier")}


def _describe_not_applied(not_applied):
    """One sentence per field derouter did not keep: what was asked, what it kept."""
    return [
        _("%(field)s not applied: asked %(asked)s, derouter kept %(kept)s") % {
            "field": FIELD_NAMES.get(name, name), "asked": asked if asked != "" else _("(empty)"),
            "kept": kept if kept != "" else _("(empty)")}
        for name, (asked, kept) in not_applied.items()
    ]


@owner_required
@require_POST
def key_reveal(request, sub_key_id):
    """Show a key's full secret once, on an owner's deliberate request; audited."""
    sub_key = get_sub_key_or_404(sub_key_id)
    audit.record(request.user, AuditEvent.Action.REVEAL, Outcome.OK, sub_key=sub_key)
    context = {"key": sub_key, **_get_quick_start(sub_key.secret.reveal(), request)}
    return _render_secret_page(request, "dashboard/key_reveal.html", context)


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
@upstream_write_deadline
def key_delete(request, sub_key_id):
    """Confirm, then delete a key; its unspent budget returns to the available balance."""
    sub_key = get_sub_key_or_404(sub_key_id)
    if request.method != "POST":
        return render(request, "dashboard/key_delete.html", {"key": sub_key})

    write = keywrites.delete_key(request.user, sub_key)
    if write.is_unknown:
        return _render_outcome_unknown(request, sub_key, write, "delete")
    if write.is_refused and write.failure.is_gone:
        messages.warning(request, _("The key %(key_id)s was already gone at derouter.") % {"key_id": sub_key.key_id})
        return redirect("console:key_list")
    if write.is_refused and write.was_sent:
        messages.error(request, _("derouter refused to delete %(key_id)s: %(message)s") % {"key_id": sub_key.key_id, "message": stored_text.read(write.failure.message)})
        return redirect("console:key_detail", sub_key_id=sub_key.id)
    if write.is_refused:
        messages.error(request, _("%(message)s The key %(key_id)s was not deleted; try again in a moment.") % {"message": stored_text.read(write.failure.message), "key_id": sub_key.key_id})
        return redirect("console:key_detail", sub_key_id=sub_key.id)

    returned = max(sub_key.remaining, Decimal(0))
    messages.success(
        request,
        _("Deleted %(labelorthekey)s (%(key_id)s); %(exact_usd)s went back to the available balance.") % {"labelorthekey": sub_key.label or 'the key', "key_id": sub_key.key_id, "exact_usd": exact_usd(returned)},
    )
    return redirect("console:key_list")
