"""What an upstream error on a write means: the one rule every write (keys and top-ups) follows.

derouter refused (a 4xx answer): nothing changed. The connection never opened:
nothing was sent, so nothing changed either. Anything else after the request
went out (a 5xx, a body we cannot read, a dropped connection, a timeout) does
not say whether the write was applied: the outcome is unknown, and the page
must say so instead of claiming nothing changed.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_noop

from ledger.models import Outcome
from lib.stored_text import note
from derouter.client import (
    AuthFailed,
    DerouterError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
    UnexpectedResponse,
)


@dataclass(frozen=True)
class ErrorOutcome:
    """How a failed write ended, for the audit trail, the ledger and the page.

    ``message`` is stored on the records as it is and read with ``lib.stored_text.read``: a note of
    ours, or derouter's own words. ``status`` is derouter's HTTP status, if it answered.
    ``was_sent`` is False when the request never left (nothing can have changed);
    ``needs_error_page`` is True for errors about our own access (the Account Key,
    rate limiting) that the console's error page explains once recorded.
    """

    outcome: str
    message: str
    status: int | None = None
    was_sent: bool = True
    needs_error_page: bool = False

    @property
    def is_gone(self):
        """derouter answered 404: the key no longer exists there."""
        return self.status == 404

    @property
    def is_refused(self):
        return self.outcome == Outcome.REFUSED

    @property
    def is_unknown(self):
        return self.outcome == Outcome.UNKNOWN


def outcome_of_write_error(error: DerouterError) -> ErrorOutcome:
    """Map an exception from a derouter write to its outcome and the message to record."""
    if isinstance(error, (Rejected, NotFound)):
        return ErrorOutcome(Outcome.REFUSED, error.message, error.status)
    if isinstance(error, (AuthFailed, RateLimited)):
        return ErrorOutcome(Outcome.REFUSED, error.message, error.status, needs_error_page=True)
    if isinstance(error, OutcomeUnknown):
        return ErrorOutcome(Outcome.UNKNOWN, error.message, error.status)
    if isinstance(error, UnexpectedResponse):
        # The write was answered "200" with something unreadable: it most likely happened.
        return ErrorOutcome(Outcome.UNKNOWN, error.message, error.status)
    if isinstance(error, Unavailable) and error.status is None:
        return ErrorOutcome(
            Outcome.REFUSED, note(gettext_noop("The change was not sent: %(reason)s"), reason=error.message), was_sent=False
        )
    if isinstance(error, Unavailable):
        return ErrorOutcome(
            Outcome.UNKNOWN, note(gettext_noop("derouter answered with an error: %(reason)s"), reason=error.message), error.status
        )
    # Any other DerouterError is an answer we did not expect to a request that went out.
    return ErrorOutcome(Outcome.UNKNOWN, error.message, error.status)
