"""The one exception family of derouter.client: everything derouter (or its edge) can answer besides success."""


class DerouterError(Exception):
    """Base class of everything the upstream can answer besides success."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        self.status = status


class Rejected(DerouterError):
    """400: the upstream refused the body or parameters; ``message`` says why."""


class AuthFailed(DerouterError):
    """401/403 from derouter itself: the key is missing, wrong, deleted or of the wrong kind."""


class NotFound(DerouterError):
    """404: no such key (or path)."""


class RateLimited(DerouterError):
    """429: too many requests; ``retry_after`` is in seconds when the upstream says.

    ``from_edge``: Cloudflare in front of derouter limited us (error 1015), not derouter.
    """

    def __init__(self, message, status=429, retry_after=None, from_edge=False):
        super().__init__(message, status)
        self.retry_after = retry_after
        self.from_edge = from_edge


class Unavailable(DerouterError):
    """The upstream could not be reached or gave no usable answer (timeout, 5xx, non-JSON)."""


class EdgeUnavailable(Unavailable):
    """Cloudflare in front of derouter answered (an HTML page: challenge, block, 52x): derouter was not reached.

    Never a verdict on a key: a customer is not signed out by it, the Account Key is not blamed.
    """


class OutcomeUnknown(Unavailable):
    """A write was sent but no answer came back: it may or may not have happened."""


class UnexpectedResponse(Unavailable):
    """The upstream answered 200 with a body of an unexpected shape."""

