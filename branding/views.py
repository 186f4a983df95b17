"""The branding settings page (owners) and the two files the portal loads from it: logo and colours."""

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import http_date
from django.views.decorators.http import require_GET, require_http_methods
from django.utils.translation import gettext_lazy as _

from accounts.roles import owner_required
from branding.colors import WHITE, contrast_ratio
from branding.forms import BrandingForm
from branding.models import Branding
from ledger import audit
from ledger.models import AuditEvent, Outcome

# A logo or colours asked for with the current version never change: the version is in the URL.
LONG_CACHE = "public, max-age=31536000, immutable"
# What the audit trail names as the subject of a branding change.
AUDIT_SUBJECT = "Portal branding"
NO_LOGO = "none"


def _get_editable_branding():
    return Branding.objects.defer("logo").order_by("pk").first() or Branding()


def _get_audited_values(branding):
    """The settings as the audit trail shows them; the logo by its type only, never its bytes."""
    values = {name: getattr(branding, name) for name in BrandingForm.Meta.fields}
    values["logo"] = branding.logo_content_type or NO_LOGO
    return values


def _get_changes(before, after, logo_replaced):
    changes = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    if logo_replaced and "logo" not in changes:
        changes["logo"] = (before["logo"], f"new {after['logo']}")
    return changes


def _get_accent_contrast(branding):
    """The saved accent's contrast with white text, for the page to show."""
    return contrast_ratio(branding.accent_color, WHITE) if branding.accent_color else None


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
def settings_page(request):
    """Owners set the portal's name, logo, colour, support contact, money unit and inference URL."""
    branding = _get_editable_branding()
    if request.method == "POST":
        before = _get_audited_values(branding)
        form = BrandingForm(request.POST, request.FILES, instance=branding)
        if form.is_valid():
            saved = form.save()
            changes = _get_changes(before, _get_audited_values(saved), logo_replaced=bool(form.cleaned_data.get("logo_file")))
            if changes:
                audit.record(request.user, AuditEvent.Action.BRANDING, Outcome.OK, subject_name=AUDIT_SUBJECT, changes=changes)
            messages.success(request, _("Portal branding saved. Your customers see it on their next page."))
            return redirect("branding:settings")
        status = 400
    else:
        form = BrandingForm(instance=branding)
        status = 200
    context = {"form": form, "current": branding, "accent_contrast": _get_accent_contrast(branding)}
    return render(request, "branding/settings.html", context, status=status)


@require_GET
def logo(request, version):
    """The uploaded logo, with the type its bytes were checked to be; never sniffed as anything else."""
    branding = Branding.objects.order_by("pk").first()
    if branding is None or not branding.has_logo:
        raise Http404(_("No logo is set."))
    response = HttpResponse(bytes(branding.logo), content_type=branding.logo_content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = 'inline; filename="logo"'
    response["Cache-Control"] = LONG_CACHE if version == branding.version else "no-cache"
    response["Last-Modified"] = http_date(branding.version)
    return response


@require_GET
def colors(request, version):
    """The accent colour as CSS custom properties (a file, since the CSP allows no inline styles)."""
    branding = Branding.load()
    css = ""
    if branding.accent_color:
        css = f":root {{ --reseller-accent: {branding.accent_color}; }}\n"
    response = HttpResponse(css, content_type="text/css; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = LONG_CACHE if version == branding.version else "no-cache"
    return response
