"""Which language a request is answered in."""

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

from accounts.models import KeyLanguage
from branding.models import Branding
from lib.language import SESSION_LANGUAGE, is_supported

PORTAL_PREFIX = "/portal/"


def choose_language(request):
    """The person's own choice (session, then cookie), the portal's default, then the browser's.

    The reseller's default for the portal stands in for the browser's Accept-Language, so a
    customer's first visit speaks the reseller's market; the menu still changes it.
    """
    session = getattr(request, "session", None)
    chosen = session.get(SESSION_LANGUAGE) if session is not None else None
    if is_supported(chosen):
        return chosen
    cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    if is_supported(cookie):
        return cookie
    if request.path.startswith(PORTAL_PREFIX):
        default = Branding.load().portal_language
        if is_supported(default):
            return default
    return translation.get_language_from_request(request)


class LanguageMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware (Content-Language, Vary) with our order of choices."""

    def process_request(self, request):
        translation.activate(choose_language(request))
        request.LANGUAGE_CODE = translation.get_language()


def language_for_key(sub_key_id):
    """The language a Client Key's customer reads: its own choice in the portal, else the portal's default."""
    return KeyLanguage.get_for_key(sub_key_id) or Branding.load().portal_language or settings.LANGUAGE_CODE
