"""A portal export's progress page (polled by htmx) and its download, for the session that asked only."""

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from exports.models import Export
from lib.htmx import render_page_or_fragment
from portal.sessions import portal_login_required


def _get_own_export(request, token):
    """The export with this token if this portal session asked for it; 404 for anyone else."""
    return get_object_or_404(Export, token=token, session_key=request.session.session_key)


@require_GET
@vary_on_headers("HX-Request")
@portal_login_required
def export_status(request, token):
    """How far the file is; htmx polls the fragment until it is done or failed."""
    export = _get_own_export(request, token)
    return render_page_or_fragment(request, "exports/status.html", "exports/_export.html", {"export": export})


@require_GET
@portal_login_required
def export_download(request, token):
    export = _get_own_export(request, token)
    if export.status != Export.Status.DONE or not export.path.exists():
        raise Http404("This file is not ready or no longer kept.")
    return FileResponse(open(export.path, "rb"), as_attachment=True, filename=export.filename,  # noqa: SIM115
                        content_type="text/csv; charset=utf-8")
