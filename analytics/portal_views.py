"""The client's own statements in the portal, from the mirror (no upstream call).

The signed-in key is found in the mirror by the SHA-256 of the key itself, so a
client can only ever reach its own statements.
"""

from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django.utils.translation import gettext_lazy

from accounts.portal_sessions import portal_login_required
from analytics import figures
from analytics.statements import NoStatement, find_statement, generate_csv_rows, get_statement_months
from lib.csv_export import csv_download
from mirror.reads import get_active_key_by_secret

NOT_MIRRORED = gettext_lazy("Your statements are not ready yet: your usage is still being collected. Try again in a few minutes.")


def _render_no_statement(request, message, status):
    return render(request, "analytics/portal_no_statement.html", {"message": message}, status=status)


def _get_statement_or_error(request, month_text):
    key = get_active_key_by_secret(request.portal_key)
    try:
        return find_statement(key, month_text, figures.today_utc(), NOT_MIRRORED), None
    except NoStatement as refusal:
        return None, _render_no_statement(request, refusal.message, refusal.status)


@require_GET
@portal_login_required
def statements(request):
    """The months the client has statements for: every past month since its key was created."""
    key = get_active_key_by_secret(request.portal_key)
    months = get_statement_months(key, figures.today_utc(), include_current=False) if key else None
    return render(request, "analytics/portal_statements.html", {"months": months, "not_mirrored": NOT_MIRRORED})


@require_GET
@portal_login_required
def statement(request, month):
    """One month's statement, printable; the same content as the reseller's copy."""
    statement, error = _get_statement_or_error(request, month)
    if error:
        return error
    csv_url = reverse("portal:statement_csv", args=[statement.month.strftime("%Y-%m")])
    return render(request, "analytics/portal_statement.html", {"statement": statement, "csv_url": csv_url})


@require_GET
@portal_login_required
def statement_csv(request, month):
    statement, error = _get_statement_or_error(request, month)
    if error:
        return error
    return csv_download(generate_csv_rows(statement), f"statement-{statement.month:%Y-%m}.csv")
