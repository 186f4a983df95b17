"""Posting a webhook to a receiver's URL, refusing targets inside our own network.

An owner types the URL, so an attacker with an owner session must not be able to make the
server probe its own network (CVE-2024-6587 in LiteLLM was this). The host is resolved at
send time, every address it resolves to must be public, and the connection goes to the
address that was checked, so a DNS answer that changes between the check and the connect
cannot slip a private address in. Redirects are not followed.

Uses the standard library: ``derouter/client.py`` stays the only importer of ``requests``.
"""

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

RESPONSE_EXCERPT_BYTES = 500


class TargetRefused(Exception):
    """The URL may not be posted to (scheme, credentials, or a non-public address)."""


@dataclass(frozen=True)
class PostResult:
    status: int
    excerpt: str


def is_public_address(address):
    """True for an address on the public internet: not loopback, private, link-local, reserved, multicast."""
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def check_url_shape(url):
    """Refuse what is wrong with the URL itself (used by the form and again at send time)."""
    parts = urlsplit(url)
    allowed_schemes = {"https", "http"} if settings.WEBHOOK_ALLOW_HTTP else {"https"}
    if parts.scheme not in allowed_schemes:
        raise TargetRefused("The URL must start with https://.")
    if not parts.hostname:
        raise TargetRefused("The URL has no host.")
    if parts.username or parts.password:
        raise TargetRefused("The URL may not carry a user name or password.")
    return parts


def resolve_target(url):
    """The URL's parts and the one checked address to connect to; TargetRefused if not allowed."""
    parts = check_url_shape(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"The host {parts.hostname} could not be resolved.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"The host {parts.hostname} has no address.")
    if not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        for address in addresses:
            if not is_public_address(address):
                raise TargetRefused(
                    f"The host {parts.hostname} resolves to {address}, which is not a public address."
                )
    return parts, port, str(addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address already checked, whatever DNS says now."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the address already checked, verifying the certificate for the URL's host name."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url, body, headers, timeout):
    """POST ``body`` (bytes) once; return the status and the start of the answer.

    Raises TargetRefused before connecting to a refused target, OSError or
    http.client.HTTPException when the receiver cannot be reached or answers garbage.
    """
    parts, port, address = resolve_target(url)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(parts.hostname, port, address, timeout)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", "replace")
        return PostResult(response.status, excerpt)
    finally:
        connection.close()
