"""The one htmx policy: when a view answers with a fragment instead of a page.

``base.html`` makes htmx swap error answers too, so a fragment keeps its real
status code (400, 404, 503) just like the page would.
"""

from django.shortcuts import render


def wants_fragment(request):
    """True for an htmx request that swaps part of a page.

    A boosted link or form (hx-boost) navigates: it gets the whole page.
    """
    return bool(request.htmx) and not request.htmx.boosted


def render_page_or_fragment(request, page_template, fragment_template, context, status=200):
    """Render the fragment for an htmx swap, otherwise the full page, from one context."""
    template = fragment_template if wants_fragment(request) else page_template
    return render(request, template, context, status=status)
