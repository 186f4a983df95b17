"""The client portal's pages: a customer signs in with its Client Key and sees its own balance, usage and logs.

Every page talks to derouter with the customer's own Client Key only, never
with the Account Key, so one customer's session cannot show another's data.
"""

import logging
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import gettext_lazy as _

from analytics.panels import PortalUsagePanel
from automation.expiry import get_expired_notice
from branding.doors import get_doors
from branding.models import Branding
from derouter.client import (
    AuthFailed,
    NotFound,
    RateLimited,
    Rejected,
    Unavailable,
    get_client_balance,
    get_client_usage_logs,
)
from accounts.throttle import Throttle, client_address
from exports.models import Export
from lib.csv_export import csv_download
from lib.htmx import render_page_or_fragment, wants_fragment
from lib.money import is_running_low
from lib.paging import pager_for_log_page
from mirror.reads import get_active_key_by_secret, get_client_view, get_key_freshness
from portal.forms import INVALID_KEY_MESSAGE, LOG_PAGE_SIZES, LogsQueryForm, PortalLoginForm, TimeZoneForm
from portal.language_views import restore_key_language
from accounts.portal_sessions import (
    end_portal_session,
    get_portal_key,
    get_time_zone_name,
    has_chosen_time_zone,
    portal_login_required,
    set_time_zone_name,
    start_portal_session,
)
from portal.usage_csv import CSV_HEADER, USAGE_PAGE_SIZE, usage_csv_row
from portal.usage_export import write_usage_export

logger = logging.getLogger(__name__)

CSV_PAGE_SIZE = USAGE_PAGE_SIZE
# The home page's figures: htmx asks the page for them once it is shown (see _render_live_figures).
LIVE_FIGURES_TARGET = "portal-figures"


def _get_login_throttle():
    return Throttle("portal-login", settings.PORTAL_LOGIN_ATTEMPTS_LIMIT, settings.PORTAL_LOGIN_ATTEMPTS_WINDOW)


def _get_masked_key(client_key):
    """The key as it may be shown on a page: its prefix and last four characters."""
    return f"{client_key[:7]}…{client_key[-4:]}"


def _get_budget_state(balance):
    """The budget bar's colour class: "out", "low", or empty while there is plenty left."""
    if balance.remaining <= 0:
        return "out"
    if is_running_low(balance.remaining, balance.budget):
        return "low"
    return ""


def _get_quick_start(request, balance, branding, client_key=None):
    """The quick start's context: the full key once revealed, else the masked one, and the base URL."""
    return {
        "balance": balance,
        "client_key": client_key,
        "masked_key": _get_masked_key(request.portal_key),
        "inference_base": branding.inference_base,
        "doors": get_doors(branding),
    }


def _render_login(request, form, status=200, **context):
    return render(request, "portal/login.html", {"form": form, **context}, status=status)


def _get_or_start_export(request, zone_name, filename):
    """This session's export under way, or a new one queued for the worker (a second click starts none)."""
    session_key = request.session.session_key
    latest = Export.objects.filter(kind=Export.Kind.PORTAL_USAGE, session_key=session_key).order_by("-created_at").first()
    if latest is not None and latest.is_unfinished:
        return latest
    export = Export.objects.create(kind=Export.Kind.PORTAL_USAGE, session_key=session_key, time_zone=zone_name,
                                   filename=filename)
    write_usage_export(export.pk)
    return export


def _generate_csv_rows(client_key, first_page, zone):
    """Yield the CSV header and every log row, fetching one upstream page at a time."""
    yield CSV_HEADER
    usage_page = first_page
    while True:
        for log in usage_page.logs:
            yield usage_csv_row(log, zone)
        if usage_page.page >= first_page.pages or not usage_page.logs:
            return
        # A failure here cannot become an error page any more: the exception
        # aborts the download, so the customer sees a failed file, not a short one.
        usage_page = get_client_usage_logs(client_key, page=usage_page.page + 1, limit=CSV_PAGE_SIZE)


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login_view(request):
    """Sign a customer in with its Client Key; throttle failures per client address."""
    if request.method == "GET":
        if get_portal_key(request):
            return redirect("portal:home")
        return _render_login(request, PortalLoginForm())
    # Counted before the key is checked, so a parallel burst cannot overshoot the limit.
    throttle = _get_login_throttle()
    subject = f"ip:{client_address(request)}"
    attempt = throttle.hit(subject)
    if attempt.is_over_limit:
        response = _render_login(request, PortalLoginForm(), status=429, throttled_for=attempt.retry_after)
        response["Retry-After"] = str(attempt.retry_after)
        return response
    form = PortalLoginForm(request.POST)
    if form.is_valid():
        client_key = form.cleaned_data["client_key"]
        try:
            get_client_balance(client_key)
        except (AuthFailed, Rejected, NotFound):
            # A key the worker expired says so; any other bad key gets the one message.
            form.reject(get_expired_notice(client_key) or INVALID_KEY_MESSAGE)
        except (Unavailable, RateLimited):
            logger.warning("portal sign-in: derouter unavailable")
            throttle.forgive(subject)
            response = _render_login(request, PortalLoginForm(), status=503, upstream_down=True)
            response["Retry-After"] = "30"
            return response
        else:
            # Only this attempt is taken back, no reset: one valid key must not
            # buy an address fresh guesses at other keys.
            throttle.forgive(subject)
            start_portal_session(request, client_key)
            restore_key_language(request, client_key)
            return redirect("portal:home")
    # The bound form never renders the key back (a password input), and a
    # malformed, wrong or deleted key all carry the same single error.
    return _render_login(request, form, status=400)


@require_POST
def logout_view(request):
    """Sign the customer out and delete the session on the server."""
    end_portal_session(request)
    messages.success(request, _("You are signed out."))
    return redirect("portal:login")


def _get_figures(balance, **context):
    """The home page's figures (budget, spent, remaining, limits, usage by period) of a key's own view."""
    return {
        "balance": balance,
        "budget_state": _get_budget_state(balance),
        "usage_rows": [
            (_("Today"), balance.today),
            (_("This week"), balance.week),
            (_("This month"), balance.month),
            (_("All time"), balance.total),
        ],
        **context,
    }


def _render_live_figures(request, key):
    """The figures as derouter reports them now; the mirror's, said so, when derouter cannot answer.

    A key derouter no longer accepts signs the customer out (portal_login_required).
    """
    branding = Branding.load()
    try:
        context = _get_figures(get_client_balance(request.portal_key), live=True)
    except (Unavailable, RateLimited):
        if key is None:
            raise
        context = _get_figures(get_client_view(key), unreachable=True, freshness=get_key_freshness(key))
    return render(request, "portal/_figures.html", {"branding": branding, **context})


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
@portal_login_required
def home(request):
    """The customer's label, budget, limits, usage summary and a quick start.

    The figures come from the mirror, so the page answers at once whatever derouter does;
    htmx then fills in derouter's own figures. A key not mirrored yet is read from derouter.
    """
    key = get_active_key_by_secret(request.portal_key)
    if wants_fragment(request) and request.htmx.target == LIVE_FIGURES_TARGET:
        return _render_live_figures(request, key)
    branding = Branding.load()
    if key is None:
        figures = _get_figures(get_client_balance(request.portal_key), live=True)
    else:
        figures = _get_figures(get_client_view(key), freshness=get_key_freshness(key))
    context = {
        "branding": branding,
        **figures,
        **_get_quick_start(request, figures["balance"], branding),
        "portal_usage": PortalUsagePanel(key, branding.unit) if key else None,
    }
    return render(request, "portal/home.html", context)


@require_http_methods(["GET", "POST"])
@portal_login_required
def reveal(request):
    """Show the signed-in customer its full key, in the quick start's snippets too (htmx fragment or page).

    Only a POST reveals: a GET (a bookmarked or reloaded address) goes back to the home page.
    """
    if request.method == "GET":
        return redirect("portal:home")
    balance = get_client_balance(request.portal_key)
    context = _get_quick_start(request, balance, Branding.load(), client_key=request.portal_key)
    return render_page_or_fragment(request, "portal/reveal.html", "portal/_quick_start.html", context)


@require_GET
@vary_on_headers("HX-Request")
@portal_login_required
def logs(request):
    """The customer's usage logs, paged, in its time zone; htmx gets just the table."""
    page, limit = LogsQueryForm(request.GET).get_page_and_limit()
    usage_page = get_client_usage_logs(request.portal_key, page=page, limit=limit)
    zone_name = get_time_zone_name(request)
    context = {
        "usage_page": usage_page,
        "pager": pager_for_log_page(request, usage_page, _("Page %(page)s of %(pages)s") % {"page": usage_page.page, "pages": usage_page.pages}),
        "page_sizes": LOG_PAGE_SIZES,
        "time_zone": zone_name,
        "detect_time_zone": not has_chosen_time_zone(request),
        "time_zone_form": TimeZoneForm(initial={"tz": zone_name}),
    }
    return render_page_or_fragment(request, "portal/logs.html", "portal/_logs.html", context)


@require_http_methods(["GET", "POST"])
@portal_login_required
def set_time_zone(request):
    """Remember the customer's time zone (picked, or detected by the browser) for the logs.

    The logs keep their rows per page across the change; a GET goes to the logs, where the form is.
    """
    if request.method == "GET":
        return redirect("portal:logs")
    form = TimeZoneForm(request.POST)
    if form.is_valid():
        set_time_zone_name(request, form.cleaned_data["tz"])
        limit = form.cleaned_data.get("limit")
        return redirect(f"{reverse('portal:logs')}?limit={limit}" if limit else reverse("portal:logs"))
    return render(
        request,
        "portal/timezone.html",
        {"time_zone_form": form, "time_zone": get_time_zone_name(request)},
        status=400,
    )


@require_GET
@portal_login_required
def logs_csv(request):
    """Every log of the customer as CSV: streamed when short, else written by the worker.

    A long export streamed from a web worker could be cut off by a timeout or a restart
    and leave the customer a short file; past EXPORT_STREAM_MAX_ROWS the worker writes it
    to a file instead and the customer gets a progress page with the download at the end.
    """
    # The first page is fetched before answering, so a dead upstream still
    # gets a proper error page instead of a broken download.
    first_page = get_client_usage_logs(request.portal_key, page=1, limit=CSV_PAGE_SIZE)
    zone_name = get_time_zone_name(request)
    zone = ZoneInfo(zone_name)
    filename = Branding.load().file_name(f"usage-{timezone.now().astimezone(zone):%Y-%m-%d}.csv")
    if first_page.total > settings.EXPORT_STREAM_MAX_ROWS:
        export = _get_or_start_export(request, zone_name, filename)
        return redirect("portal:export_status", token=export.token)
    return csv_download(_generate_csv_rows(request.portal_key, first_page, zone), filename)
