"""The languages people read the console and the portal in, and how a choice is kept.

A choice lives in three places, each for a reason: the session (it follows the person
through every page), a cookie (it survives signing out, so the sign-in page speaks it too)
and a row of the person's own (a console user's profile, a Client Key's preference), so a
new device, an email or a statement uses it without asking again.
"""

from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.http import HttpResponseRedirect
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme

SESSION_LANGUAGE = "language"

# The HTML lang attribute takes BCP 47 tags: "zh-Hans", not Django's "zh-hans".
HTML_LANG = {"en": "en", "zh-hans": "zh-Hans", "zh-hant": "zh-Hant"}


def get_language_choices():
    return list(settings.LANGUAGES)


def is_supported(language):
    return language in dict(settings.LANGUAGES)


def get_html_lang(language=None):
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    return HTML_LANG.get(language, language)


class LanguageForm(forms.Form):
    language = forms.ChoiceField(choices=get_language_choices)
    next = forms.CharField(required=False, max_length=2000)


def get_safe_next(request, next_url):
    """Where to go back to: the page the menu was on, or the site's root for anything else."""
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return "/"


def remember_in_session(request, language):
    request.session[SESSION_LANGUAGE] = language


def redirect_with_language(request, language, next_url):
    """Back to the page the person was on, now in ``language``; the cookie outlives the session."""
    remember_in_session(request, language)
    response = HttpResponseRedirect(get_safe_next(request, next_url))
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
    return response


def get_return_path(request):
    """Where the language menu brings the person back to: this page, opened again in the new language.

    A page that answers a GET is its own address. A page that answers a POST (a form's result or
    its errors) may have an address that takes only POST: the person goes back to the page the form
    was on (the Referer, sent for our own pages), else to this address.
    """
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.get_full_path()


def language_menu(request):
    """Context for the language menu on every page and the page's own lang attribute."""
    current = translation.get_language() or settings.LANGUAGE_CODE
    return {
        "language_next": get_return_path(request),
        "html_lang": get_html_lang(current),
        "current_language": current,
        "language_options": [
            {"code": code, "name": name, "html_lang": get_html_lang(code), "current": code == current}
            for code, name in settings.LANGUAGES
        ],
    }
