"""The portal's language menu: a signed-in customer's choice is kept for its key (emails, statements)."""

from django.http import HttpResponseBadRequest
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from accounts.models import KeyLanguage
from accounts.portal_sessions import get_portal_key
from lib.language import LanguageForm, redirect_with_language, remember_in_session
from mirror.reads import get_active_key_by_secret


@require_POST
@csrf_protect
def set_language(request):
    form = LanguageForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(_("Choose one of the languages offered."))
    language = form.cleaned_data["language"]
    client_key = get_portal_key(request)
    key = get_active_key_by_secret(client_key) if client_key else None
    if key is not None:
        KeyLanguage.remember(key.sub_key_id, language)
    return redirect_with_language(request, language, form.cleaned_data["next"])


def restore_key_language(request, client_key):
    """At sign-in: the language this key's customer chose before, if any."""
    key = get_active_key_by_secret(client_key)
    language = KeyLanguage.get_for_key(key.sub_key_id) if key is not None else ""
    if language:
        remember_in_session(request, language)
