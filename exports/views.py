"""An export's progress page (polled by htmx) and its download, for whoever asked for it only.

A customer's usage export is reached from its portal session, a ledger export from its
console user; anyone else gets a 404, as if it did not exist.
"""

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import gettext_lazy as _

from accounts.portal_sessions import portal_login_required
from accounts.roles import console_required
from exports.models import Export
from lib.htmx import render_page_or_fragment


def _get_context(export, namespace, back_url):
    return {
        "export": export,
        "status_url": reverse(f"{namespace}:export_status", args=[export.token]),
        "download_url": reverse(f"{namespace}:export_download", args=[export.token]),
        "back_url": back_url,
    }


def _get_download(export):
    if export.status != Export.Status.DONE or not export.path.exists():
        raise Http404(_("This file is not ready or no longer kept."))
    return FileResponse(open(export.path, "rb"), as_attachment=True, filename=export.filename,  # noqa: SIM115
                        content_type="text/csv; charset=utf-8")


@require_GET
@vary_on_headers("HX-Request")
@portal_login_required
def portal_export_status(request, token):
    """How far the customer's file is; htmx polls the fragment until it is done or failed."""
    export = get_object_or_404(Export, token=token, kind=Export.Kind.PORTAL_USAGE,
                               session_key=request.session.session_key)
    context = _get_context(export, "portal", reverse("portal:logs"))
    return render_page_or_fragment(request, "exports/portal_status.html", "exports/_export.html", context)


@require_GET
@portal_login_required
def portal_export_download(request, token):
    return _get_download(get_object_or_404(Export, token=token, kind=Export.Kind.PORTAL_USAGE,
                                           session_key=request.session.session_key))


@console_required
@require_GET
@vary_on_headers("HX-Request")
def console_export_status(request, token):
    """How far the console user's ledger file is; htmx polls the fragment until it is done or failed."""
    export = get_object_or_404(Export, token=token, kind=Export.Kind.LEDGER, user=request.user)
    context = _get_context(export, "console", reverse("console:ledger"))
    return render_page_or_fragment(request, "exports/console_status.html", "exports/_export.html", context)


@console_required
@require_GET
def console_export_download(request, token):
    return _get_download(get_object_or_404(Export, token=token, kind=Export.Kind.LEDGER, user=request.user))
