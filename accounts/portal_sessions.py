"""Client portal sessions: who is signed in with which Client Key, and for how long.

A portal session is not a Django auth login. The Client Key and its timestamps
live under their own session keys, server-side only, so a console login never
makes anyone a portal user and a portal session never reaches the console.
"""

import functools
import logging
import time
import zoneinfo

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.dispatch import Signal
from django_htmx.http import HttpResponseClientRedirect
from django.utils.translation import gettext_lazy as _

from derouter.client import AuthFailed, DerouterError, RateLimited, Unavailable
from lib.encryption import decrypt, encrypt
from lib.htmx import render_page_or_fragment

logger = logging.getLogger(__name__)

# The Client Key, encrypted: the session table holds nothing a customer could sign in with.
SESSION_KEY = "portal_key"
SESSION_KEY_PURPOSE = "portal-session-client-key"
SESSION_SIGNED_IN_AT = "portal_signed_in_at"
SESSION_LAST_SEEN_AT = "portal_last_seen_at"
SESSION_TIME_ZONE = "portal_tz"
PORTAL_SESSION_KEYS = (SESSION_KEY, SESSION_SIGNED_IN_AT, SESSION_LAST_SEEN_AT, SESSION_TIME_ZONE)

DEFAULT_TIME_ZONE = "UTC"

# Sent (with ``client_key``) when derouter no longer accepts a signed-in customer's key. An app that
# closed the key on purpose (automation's expiry) answers with a notice saying so; others answer None.
# A signal, because the apps that close keys sit above this one.
portal_key_refused = Signal()

KEY_NO_LONGER_VALID = _("This key is no longer valid. Ask your provider for a new one, then sign in again.")
IDLE_EXPIRED = _("You were signed out after a period of inactivity. Sign in again to continue.")
LIFETIME_EXPIRED = _("Your session has ended for your security. Sign in again to continue.")
SIGN_IN_FIRST = _("Sign in with your Client Key to continue.")


# Files of the tz database that are not places: "localtime" is the server's own zone.
NOT_TIME_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _get_known_time_zones():
    # available_timezones() walks the tz database on disk: read it once.
    return frozenset(zoneinfo.available_timezones()) - NOT_TIME_ZONES


def is_known_time_zone(name):
    return name in _get_known_time_zones()


# The regions of the tz database whose zones are places; the rest (US/, Etc/, Canada/, ...) are
# old aliases kept for compatibility, which only make the list longer and confusing.
TIME_ZONE_REGIONS = ("Africa", "America", "Antarctica", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific")
TZDATA_SOURCE = "/usr/share/zoneinfo/tzdata.zi"


@functools.cache
def _get_alias_time_zones():
    """Zones the tz database marks as links to another ("L target alias" lines), if its source is here."""
    try:
        with open(TZDATA_SOURCE, encoding="utf-8") as source:
            return frozenset(line.split()[2] for line in source if line.startswith("L "))
    except OSError:
        return frozenset()


def _get_time_zone_label(name):
    """"America/Argentina/Buenos_Aires" as "Argentina / Buenos Aires" under its region."""
    return name.partition("/")[2].replace("_", " ").replace("/", " / ")


@functools.cache
def get_time_zone_choices():
    """The time zones people pick from, grouped by region: no legacy aliases, UTC first."""
    aliases = _get_alias_time_zones()
    grouped = {region: [] for region in TIME_ZONE_REGIONS}
    for name in sorted(_get_known_time_zones() - aliases):
        region = name.partition("/")[0]
        if region in grouped and "/" in name:
            grouped[region].append((name, _get_time_zone_label(name)))
    return [(DEFAULT_TIME_ZONE, DEFAULT_TIME_ZONE)] + [(region, zones) for region, zones in grouped.items() if zones]


def start_portal_session(request, client_key):
    """Sign a customer in: rotate the session id and keep the key server-side."""
    for name in PORTAL_SESSION_KEYS:
        request.session.pop(name, None)
    # A new session id makes any id planted before sign-in worthless.
    request.session.cycle_key()
    now = int(time.time())
    request.session[SESSION_KEY] = encrypt(client_key, SESSION_KEY_PURPOSE)
    request.session[SESSION_SIGNED_IN_AT] = now
    request.session[SESSION_LAST_SEEN_AT] = now


def end_portal_session(request):
    """Sign out: delete the session on the server and forget its id."""
    request.session.flush()


def get_portal_key(request):
    """The signed-in customer's Client Key, or None (also for one stored before encryption or under another SECRET_KEY)."""
    return get_session_client_key(request.session)


def get_session_client_key(session):
    """The Client Key a portal session holds, or None; also for a session read outside a request (the worker)."""
    return decrypt(session.get(SESSION_KEY), SESSION_KEY_PURPOSE)


def get_time_zone_name(request):
    """The customer's chosen time zone, validated, defaulting to UTC."""
    name = request.session.get(SESSION_TIME_ZONE)
    return name if name and is_known_time_zone(name) else DEFAULT_TIME_ZONE


def has_chosen_time_zone(request):
    return SESSION_TIME_ZONE in request.session


def set_time_zone_name(request, name):
    request.session[SESSION_TIME_ZONE] = name


def get_refused_key_notice(client_key):
    """Why derouter refuses this key, if an app closed it on purpose; else None."""
    for _receiver, notice in portal_key_refused.send(sender=None, client_key=client_key):
        if notice:
            return notice
    return None


def _get_expiry_message(request, now):
    """Why the portal session has run out, or None while it is still good."""
    signed_in_at = request.session.get(SESSION_SIGNED_IN_AT)
    last_seen_at = request.session.get(SESSION_LAST_SEEN_AT)
    if not isinstance(signed_in_at, int) or not isinstance(last_seen_at, int):
        return LIFETIME_EXPIRED
    if now - signed_in_at >= settings.PORTAL_ABSOLUTE_TIMEOUT:
        return LIFETIME_EXPIRED
    if now - last_seen_at >= settings.PORTAL_IDLE_TIMEOUT:
        return IDLE_EXPIRED
    return None


def _get_last_seen_resolution():
    """How stale the recorded last visit may get before a request records it again.

    Recording it changes the session, which costs a database write on every page; at
    most once a minute (or a tenth of a short idle timeout) is precise enough for it.
    """
    return min(60, settings.PORTAL_IDLE_TIMEOUT // 10)


def _redirect_to_login(request):
    """Send the browser to the portal sign-in page; htmx needs a full-page redirect."""
    if request.htmx:
        return HttpResponseClientRedirect(reverse("portal:login"))
    return redirect("portal:login")


def sign_out_with_message(request, message):
    """End the portal session and leave a message for the sign-in page."""
    end_portal_session(request)
    messages.warning(request, message)
    return _redirect_to_login(request)


def render_upstream_problem(request, status, title, retry_after=None):
    """A customer-facing page for an upstream failure; the session stays as it is."""
    response = render_page_or_fragment(request, "portal/problem.html", "portal/_problem.html", {"title": title}, status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def portal_login_required(view):
    """Let only a live portal session in, and turn upstream failures into customer pages.

    Runs the idle and absolute timeouts server-side, passes the key to the
    view as ``request.portal_key``, signs the customer out when the upstream
    no longer accepts the key, and answers 503/502 (session kept) when the
    upstream is down, slow or confused.
    """

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        client_key = get_portal_key(request)
        if not client_key:
            messages.info(request, SIGN_IN_FIRST)
            return _redirect_to_login(request)
        now = int(time.time())
        expiry_message = _get_expiry_message(request, now)
        if expiry_message:
            return sign_out_with_message(request, expiry_message)
        if now - request.session[SESSION_LAST_SEEN_AT] >= _get_last_seen_resolution():
            request.session[SESSION_LAST_SEEN_AT] = now
        request.portal_key = client_key
        try:
            return view(request, *args, **kwargs)
        except AuthFailed:
            return sign_out_with_message(request, get_refused_key_notice(client_key) or KEY_NO_LONGER_VALID)
        except RateLimited as error:
            return render_upstream_problem(
                request, 503, _("The service is busy right now. Wait a moment and try again."), error.retry_after or 30
            )
        except Unavailable as error:
            logger.warning("portal: upstream unavailable on %s (%s)", request.path, error.status)
            return render_upstream_problem(
                request, 503, _("The service is not answering right now. Your session is kept: try again in a moment."), 30
            )
        except DerouterError as error:
            logger.warning("portal: unexpected upstream answer on %s (%s)", request.path, error.status)
            return render_upstream_problem(request, 502, _("The service gave an answer we could not use. Try again later."))

    return wrapper
