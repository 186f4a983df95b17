"""The language menu's form: it works without JavaScript and brings the person back to the same page."""

from django.http import HttpResponseBadRequest
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from accounts.models import ConsoleProfile
from lib.language import LanguageForm, redirect_with_language


@require_POST
@csrf_protect
def set_language(request):
    """Switch language; a signed-in console user keeps the choice on every device."""
    form = LanguageForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(_("Choose one of the languages offered."))
    language = form.cleaned_data["language"]
    if request.user.is_authenticated:
        ConsoleProfile.objects.filter(user=request.user).update(language=language)
    return redirect_with_language(request, language, form.cleaned_data["next"])
