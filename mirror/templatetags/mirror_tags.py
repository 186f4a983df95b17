"""{% freshness %}: how fresh the key snapshot a page shows is, with a Refresh control."""

from django import template
from django.utils.translation import gettext as _

from mirror.reads import get_freshness

register = template.Library()


@register.inclusion_tag("mirror/_freshness.html", takes_context=True)
def freshness(context, of=None):
    """``of``: a Freshness the page has already (the key page: its key's), else the whole snapshot's, read here."""
    request = context["request"]
    return {
        "freshness": of or get_freshness(),
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "next_url": request.get_full_path(),
    }


@register.filter
def age(seconds):
    """8 s, 3 min 5 s, 2 h 4 min: an age short enough for a status line."""
    if seconds is None:
        return ""
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return _("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": minutes}
    if minutes:
        return _("%(minutes)s min %(seconds)s s") % {"minutes": minutes, "seconds": seconds}
    return _("%(seconds)s s") % {"seconds": seconds}
