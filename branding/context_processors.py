from django.utils.functional import SimpleLazyObject

from branding.models import Branding


def branding(request):
    """``branding`` in every template, read (from the cache) only by the pages that use it."""
    return {"branding": SimpleLazyObject(Branding.load)}
