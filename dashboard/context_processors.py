from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from accounts.roles import get_role


def csp_nonce(request):
    """Expose the request's CSP nonce as ``csp_nonce``, the name django-htmx's tags read."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


def page_chrome(request):
    """``chrome_template``: the frame error pages extend, so they keep the navigation people came with.

    A signed-in console user keeps the console's navigation on a 403, 404 or 503; the portal's
    pages keep the portal's (and its branding); anyone else gets the plain frame.
    """
    if request.path.startswith("/portal/"):
        return {"chrome_template": "portal/base.html", "chrome_home": reverse("portal:home"), "chrome_home_label": _("Your portal")}
    user = getattr(request, "user", None)
    if user is not None and get_role(user) is not None:
        return {"chrome_template": "dashboard/base.html", "chrome_home": reverse("console:overview"), "chrome_home_label": _("Overview")}
    return {"chrome_template": "base.html", "chrome_home": "/", "chrome_home_label": _("Home")}
