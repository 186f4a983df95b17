"""Feedback after every action: Django messages shown as toasts, on full pages and after htmx swaps.

A full page renders pending messages in ``base.html``'s live region (``#toasts``), so a plain
form post without JavaScript gets its toast after the redirect. An htmx answer has no such
region of its own (it swaps a fragment, often inside a dialog that then closes), so this
middleware appends the pending messages as an out-of-band swap into the page's ``#toasts``.
"""

from django.contrib.messages import get_messages
from django.template.loader import render_to_string

from lib.htmx import wants_fragment


class HtmxToastsMiddleware:
    """Append pending messages to an htmx fragment as an out-of-band swap into ``#toasts``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not self._can_carry_toasts(request, response):
            return response
        storage = get_messages(request)
        if not len(storage):
            return response
        toasts = render_to_string("_toasts_oob.html", {"messages": storage}, request=request)
        response.content += toasts.encode(response.charset)
        return response

    @staticmethod
    def _can_carry_toasts(request, response):
        return (
            wants_fragment(request)
            and not response.streaming
            and response.status_code not in (204, 301, 302, 303, 307, 308)
            and "HX-Redirect" not in response
            and "HX-Location" not in response
            and response.get("Content-Type", "").startswith("text/html")
        )
