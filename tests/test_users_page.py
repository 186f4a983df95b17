"""The users page: invitations, role and cap, disabling, resetting two-factor, the last owner, the audit trail."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ConsoleProfile, Invitation, Role
from ledger.models import AuditEvent

pytestmark = pytest.mark.django_db


def invite(owner_client, email="new@example.com", role="staff", cap=""):
    response = owner_client.post(reverse("console:user_invite"), {"email": email, "role": role, "daily_topup_cap": cap})
    assert response.status_code == 200, response.content.decode()[:2000]
    return re.search(r'id="invitation-link" value="([^"]+)"', response.content.decode()).group(1)


def test_staff_get_403_on_every_users_page(staff_client, owner):
    for url in (reverse("console:users"), reverse("console:user_detail", args=[owner.pk])):
        assert staff_client.get(url).status_code == 403
    for url in (reverse("console:user_invite"), reverse("console:user_active", args=[owner.pk])):
        assert staff_client.post(url, {"email": "x@example.com", "role": "owner"}).status_code == 403
    assert not Invitation.objects.exists()


def test_the_users_page_lists_console_users(owner_client, staff):
    body = owner_client.get(reverse("console:users")).content.decode()
    assert "olivia" in body and "sam" in body
    assert '<th scope="col">Role</th>' in body


def test_an_invitation_is_shown_to_the_owner_and_emailed(owner_client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    link = invite(owner_client, cap="150")
    assert "/invite/" in link
    assert len(mail.outbox) == 1 and link in mail.outbox[0].body
    assert "password" not in mail.outbox[0].body.split(link)[1]
    event = AuditEvent.objects.get(action=AuditEvent.Action.USER_INVITE)
    assert event.subject_name == "new@example.com" and event.changes["daily_topup_cap"] == [None, "150"]


def test_the_invitee_chooses_a_password_and_the_link_works_once(owner_client, client):
    link = invite(owner_client, cap="150")
    path = link.split("testserver", 1)[1]
    assert client.get(path).status_code == 200
    response = client.post(path, {"username": "newbie", "password1": "a-long-new-pass-9", "password2": "a-long-new-pass-9"})
    assert response["Location"] == reverse("console:two_factor")
    user = User.objects.get(username="newbie")
    assert user.email == "new@example.com" and user.console_profile.role == Role.STAFF
    assert user.console_profile.daily_topup_cap == Decimal("150")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.USER_JOIN, subject_name="newbie").exists()
    again = Client().post(path, {"username": "second", "password1": "a-long-new-pass-9", "password2": "a-long-new-pass-9"})
    assert again.status_code == 404
    assert not User.objects.filter(username="second").exists()


def test_an_expired_or_forged_invitation_is_refused(owner_client, client, settings):
    link = invite(owner_client)
    path = link.split("testserver", 1)[1]
    assert client.get(path[:-3] + "abc/").status_code == 404
    settings.INVITATION_MAX_AGE = -1
    assert client.get(path).status_code == 404


def test_an_owner_sets_role_and_cap(owner_client, staff):
    response = owner_client.post(
        reverse("console:user_access", args=[staff.pk]), {"role": "staff", "daily_topup_cap": "75.5"}
    )
    assert response.status_code == 302
    staff.console_profile.refresh_from_db()
    assert staff.console_profile.daily_topup_cap == Decimal("75.5")
    event = AuditEvent.objects.get(action=AuditEvent.Action.USER_ACCESS)
    assert event.subject_name == "sam" and event.changes == {"daily_topup_cap": [None, "75.5"]}


def test_a_cap_must_be_a_plain_number(owner_client, staff):
    response = owner_client.post(reverse("console:user_access", args=[staff.pk]), {"role": "staff", "daily_topup_cap": "1e3"})
    assert response.status_code == 400


def test_the_last_owner_cannot_demote_or_disable_themselves(owner_client, owner):
    response = owner_client.post(reverse("console:user_access", args=[owner.pk]), {"role": "staff"})
    assert response.status_code == 400
    assert "last active owner" in response.content.decode()
    owner_client.post(reverse("console:user_active", args=[owner.pk]), {"active": "0"})
    owner.refresh_from_db()
    assert owner.is_active and owner.console_profile.role == Role.OWNER


def test_an_owner_may_step_down_when_another_owner_remains(owner_client, owner, django_user_model):
    other = django_user_model.objects.create_user("otto", password="x-pass-12345678")
    ConsoleProfile.objects.create(user=other, role=Role.OWNER)
    owner_client.post(reverse("console:user_access", args=[owner.pk]), {"role": "staff"})
    owner.console_profile.refresh_from_db()
    assert owner.console_profile.role == Role.STAFF


def test_disabling_a_user_ends_their_open_session_at_once(owner_client, staff):
    staff_client = Client()
    staff_client.force_login(staff)
    assert staff_client.get(reverse("console:key_list")).status_code == 200
    owner_client.post(reverse("console:user_active", args=[staff.pk]), {"active": "0"})
    response = staff_client.get(reverse("console:key_list"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.USER_DISABLE, subject_name="sam").exists()
    # Enabled again, the old session stays ended.
    owner_client.post(reverse("console:user_active", args=[staff.pk]), {"active": "1"})
    assert staff_client.get(reverse("console:key_list")).status_code == 302


def test_resetting_two_factor_removes_the_device_and_ends_sessions(owner_client, staff):
    TOTPDevice.objects.create(user=staff, name="app", confirmed=True)
    staff_client = Client()
    staff_client.force_login(staff)
    response = owner_client.post(reverse("console:user_reset_two_factor", args=[staff.pk]))
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=staff).exists()
    assert staff_client.get(reverse("console:key_list")).status_code == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.RESET_2FA, subject_name="sam").exists()


def test_a_session_not_verified_by_the_device_is_signed_out(client, owner):
    TOTPDevice.objects.create(user=owner, name="app", confirmed=True)
    client.force_login(owner)
    response = client.get(reverse("console:key_list"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session


def test_user_changes_show_in_the_audit_trail(owner_client, staff):
    owner_client.post(reverse("console:user_active", args=[staff.pk]), {"active": "0"})
    body = owner_client.get(reverse("console:audit_trail")).content.decode()
    assert "Disable user" in body and "user sam" in body


def test_a_withdrawn_invitation_link_no_longer_works(owner_client, client):
    link = invite(owner_client)
    invitation = Invitation.objects.get()
    response = owner_client.post(reverse("console:invitation_withdraw", args=[invitation.pk]))
    assert response.status_code == 302
    assert client.get(link.split("testserver", 1)[1]).status_code == 404
    assert AuditEvent.objects.filter(action=AuditEvent.Action.USER_INVITE_WITHDRAW, subject_name="new@example.com").exists()


def test_without_a_mail_server_the_owner_is_told_to_send_the_link(owner_client, settings):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, False, 2
    response = owner_client.post(reverse("console:user_invite"), {"email": "x@example.com", "role": "staff"})
    assert response.status_code == 200
    assert "No email went out" in response.content.decode()


def test_two_owners_demoting_each_other_leave_one_owner(owner_client, owner, django_user_model):
    other = django_user_model.objects.create_user("otto", password="x-pass-12345678")
    ConsoleProfile.objects.create(user=other, role=Role.OWNER)
    owner_client.post(reverse("console:user_access", args=[other.pk]), {"role": "staff"})
    response = owner_client.post(reverse("console:user_access", args=[owner.pk]), {"role": "staff"})
    assert response.status_code == 400
    assert ConsoleProfile.objects.filter(role=Role.OWNER).count() == 1


# ---------------------------------------------------------------- who sees margins


def test_an_owner_lets_a_staff_member_see_margins_on_the_users_page_and_stops_it(owner_client, staff):
    page = owner_client.get(reverse("console:users")).content.decode()
    url = reverse("console:user_margins", args=[staff.pk])
    assert f'action="{url}"' in page and "Allow margins" in page

    response = owner_client.post(url, {"can_see_margins": "true"}, follow=True)

    staff.console_profile.refresh_from_db()
    assert staff.console_profile.can_see_margins is True
    body = response.content.decode()
    assert "sam now sees real costs and margins in analytics." in body and "Hide margins" in body
    event = AuditEvent.objects.get(action=AuditEvent.Action.USER_MARGINS)
    assert (event.actor_name, event.subject_name, event.changes) == ("olivia", "sam", {"can_see_margins": [False, True]})
    staff_browser = Client()
    staff_browser.force_login(staff)
    assert "Margin" in staff_browser.get("/dashboard/analytics/").content.decode()

    owner_client.post(url, {"can_see_margins": "false"})
    staff.console_profile.refresh_from_db()
    assert staff.console_profile.can_see_margins is False
    assert AuditEvent.objects.filter(action=AuditEvent.Action.USER_MARGINS).count() == 2
    assert "Margin" not in staff_browser.get("/dashboard/analytics/").content.decode()


def test_the_margins_switch_is_for_owners_with_csrf_and_never_for_owners_themselves(owner, staff, owner_client):
    url = reverse("console:user_margins", args=[staff.pk])
    staff_browser = Client()
    staff_browser.force_login(staff)
    assert staff_browser.post(url, {"can_see_margins": "true"}).status_code == 403
    assert owner_client.get(url).status_code == 405
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    assert csrf_client.post(url, {"can_see_margins": "true"}).status_code == 403
    staff.console_profile.refresh_from_db()
    assert staff.console_profile.can_see_margins is False

    response = owner_client.post(reverse("console:user_margins", args=[owner.pk]), {"can_see_margins": "false"}, follow=True)
    assert "owners always see margins" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.USER_MARGINS).exists()


def test_setting_margins_as_they_are_changes_nothing_and_says_so(owner_client, staff):
    response = owner_client.post(reverse("console:user_margins", args=[staff.pk]), {"can_see_margins": "false"}, follow=True)
    assert "Nothing changed: sam already does not see margins." in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.USER_MARGINS).exists()
