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
from django.utils.translation import gettext_noop

from lib.stored_text import note

RESPONSE_EXCERPT_BYTES = 500


class TargetRefused(Exception):
    """The URL may not be posted to (scheme, credentials, or a non-public address).

    Its text is a stored note (``lib.stored_text``): kept on a delivery, read in each reader's language.
    """

    def __init__(self, msgid, **values):
        super().__init__(note(msgid, **values))


class TargetUnresolved(TargetRefused):
    """The URL's host name does not resolve (now)."""


@dataclass(frozen=True)
class PostResult:
    status: int
    excerpt: str


# IPv6 forms that carry an IPv4 address inside them: a tunnel or translator would
# deliver to that IPv4 address, so it is the one that has to be public.
_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")


def _embedded_ipv4_addresses(address):
    """The IPv4 addresses an IPv6 address stands for (mapped, compatible, translated, 6to4, NAT64)."""
    embedded = []
    if address.ipv4_mapped is not None:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    low_32_bits = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        embedded.append(low_32_bits)
    if address in _IPV4_TRANSLATED or any(address in prefix for prefix in _NAT64_PREFIXES):
        embedded.append(low_32_bits)
    return embedded


def _is_public_ipv4_or_ipv6(address):
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def is_public_address(address):
    """True for an address on the public internet: not loopback, private, link-local, reserved, multicast.

    An IPv6 address that embeds an IPv4 one (IPv4-mapped, IPv4-compatible, translated,
    6to4 ``2002::/16``, NAT64) is public only when every address it embeds is. Teredo
    (``2001::/32``) is refused outright: it is a tunnel, never a webhook receiver.
    """
    if address.version == 6:
        if address.teredo is not None:
            return False
        embedded = _embedded_ipv4_addresses(address)
        if embedded:
            return all(_is_public_ipv4_or_ipv6(inner) for inner in embedded)
    return _is_public_ipv4_or_ipv6(address)


def check_url_shape(url):
    """Refuse what is wrong with the URL itself (used by the form and again at send time)."""
    parts = urlsplit(url)
    allowed_schemes = {"https", "http"} if settings.WEBHOOK_ALLOW_HTTP else {"https"}
    if parts.scheme not in allowed_schemes:
        raise TargetRefused(gettext_noop("The URL must start with https://."))
    if not parts.hostname:
        raise TargetRefused(gettext_noop("The URL has no host."))
    if parts.username or parts.password:
        raise TargetRefused(gettext_noop("The URL may not carry a user name or password."))
    return parts


def resolve_target(url):
    """The URL's parts and the one checked address to connect to; TargetRefused if not allowed."""
    parts = check_url_shape(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetUnresolved(gettext_noop("The host %(host)s could not be resolved."), host=parts.hostname) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise TargetRefused(gettext_noop("The host %(host)s has no address."), host=parts.hostname)
    if not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        for address in addresses:
            if not is_public_address(address):
                raise TargetRefused(
                    gettext_noop("Webhooks go only to public addresses: %(host)s is %(address)s, "
                                 "an address inside a private, loopback or otherwise non-public network.")
                    if parts.hostname == str(address)
                    else gettext_noop("Webhooks go only to public addresses: %(host)s resolves to %(address)s, "
                                      "an address inside a private, loopback or otherwise non-public network."),
                    host=parts.hostname, address=str(address),
                )
    return parts, port, str(addresses[0])


def check_target_on_save(url):
    """Refuse, when an owner saves it, a URL whose host is or resolves to a non-public address.

    A host that does not resolve now is let through: DNS may not know it yet, and the
    send-time check (``resolve_target``) refuses it then if it turns out private.
    """
    check_url_shape(url)
    try:
        resolve_target(url)
    except TargetUnresolved:
        pass


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
