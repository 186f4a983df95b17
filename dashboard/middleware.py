"""Turn upstream failures into clear pages, and keep private pages out of caches."""

import logging

from django.shortcuts import render
from django.utils.translation import gettext as _

from accounts.roles import is_owner
from derouter.client import AuthFailed, RateLimited, Unavailable, UnexpectedResponse

logger = logging.getLogger(__name__)


class UpstreamErrorMiddleware:
    """Render a derouter failure that a view did not handle as a 502/503 page.

    Views handle the errors they can act on (a rejected form, an unknown id);
    anything else from the upstream ends here instead of as a Django 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, UnexpectedResponse):
            status, title = 502, _("derouter sent an answer we could not read")
        elif isinstance(exception, Unavailable):
            status, title = 503, _("derouter is not answering")
        elif isinstance(exception, AuthFailed):
            status, title = 502, _("The Account Key is not accepted by derouter")
        elif isinstance(exception, RateLimited):
            status, title = 503, _("derouter is rate limiting us")
        else:
            return None
        # White label: a customer hears of the service, never of our upstream's name or our Account Key.
        for_customer = request.path.startswith("/portal/")
        if for_customer:
            title = _("The service is busy or not answering") if status == 503 else _("The service could not complete this")
        logger.warning("upstream failure on %s: %s (%s)", request.path, type(exception).__name__, exception.status)
        response = render(
            request,
            "upstream_error.html",
            {
                "title": title,
                "error": exception,
                "for_customer": for_customer,
                "is_account_key_problem": isinstance(exception, AuthFailed) and not for_customer,
                "show_account_key_hint": isinstance(exception, AuthFailed) and is_owner(request.user),
            },
            status=status,
        )
        if isinstance(exception, RateLimited) and exception.retry_after:
            response["Retry-After"] = str(exception.retry_after)
        elif status == 503:
            response["Retry-After"] = "30"
        return response


class NoStoreMiddleware:
    """Mark every dynamic page ``Cache-Control: no-store``: they show money and keys."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/static/"):
            response["Cache-Control"] = "no-store"
        return response
