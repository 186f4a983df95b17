"""One-time invitation tokens ride in the link's path; no log line (access, request, error) ever holds one."""

import logging
import re

import pytest
import requests
from django.conf import settings

from accounts.invitations import create_invitation, make_token
from accounts.models import Role
from ops.log_redaction import RedactSecretPathsFilter, redact_path
from tests.gunicorn_helpers import start_gunicorn
from tests.helpers import database_url_for_subprocesses


def test_an_invitation_path_is_redacted_wherever_it_appears():
    token = "eyJpZCI6MX0:1tXyZ:abc-DEF_123"
    assert redact_path(f"GET /invite/{token}/ HTTP/1.1") == "GET /invite/[redacted]/ HTTP/1.1"
    assert redact_path(f"<WSGIRequest: POST '/invite/{token}/'>") == "<WSGIRequest: POST '/invite/[redacted]/'>"
    assert redact_path("/dashboard/users/invite/") == "/dashboard/users/invite/"


def test_the_filter_rewrites_messages_arguments_and_the_request_shown():
    token = "secret-token-value"
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Not Found: %s", (f"/invite/{token}/",), None)
    record.request = type("Request", (), {"__repr__": lambda self: f"<WSGIRequest: GET '/invite/{token}/'>"})()
    atoms = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(U)s", None, None)
    atoms.args = {"U": f"/invite/{token}/", "s": "404"}
    for each in (record, atoms):
        RedactSecretPathsFilter().filter(each)
        assert token not in each.getMessage()
    assert token not in str(record.request)


@pytest.mark.django_db(transaction=True)
def test_following_and_answering_an_invitation_under_gunicorn_logs_no_token(tmp_path, owner):
    invitation = create_invitation("new@example.com", Role.STAFF, None, owner)
    token = make_token(invitation)
    server = start_gunicorn(tmp_path, DATABASE_URL=database_url_for_subprocesses(), SECRET_KEY=settings.SECRET_KEY)
    try:
        browser = requests.Session()
        page = browser.get(f"{server.base_url}/invite/{token}/", timeout=20)
        assert page.status_code == 200 and "new@example.com" in page.text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        refused = browser.post(
            f"{server.base_url}/invite/{token}/",
            {"csrfmiddlewaretoken": csrf, "username": "", "password1": "a", "password2": "b"},
            headers={"Referer": f"{server.base_url}/invite/{token}/"},
            timeout=20,
        )
        assert refused.status_code == 400
        assert browser.get(f"{server.base_url}/invite/{token}x/", timeout=20).status_code == 404
    finally:
        server.stop()
    logs = server.logs()
    assert logs.count("/invite/[redacted]/") >= 5, logs[-3000:]  # three access lines, two request warnings
    assert token not in logs and invitation.nonce not in logs
    assert token.split(":")[0] not in logs
