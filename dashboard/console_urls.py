from django.urls import path, register_converter

from accounts import two_factor_views, user_views
from dashboard.converters import SubKeyIdConverter
from dashboard.views import audit, keys, logs, overview, reclaim, reconcile, topups, upstream
from exports import views as export_views
from mirror import views as mirror_views

register_converter(SubKeyIdConverter, "subkey")

app_name = "console"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("keys/", keys.key_list, name="key_list"),
    path("keys/new/", keys.key_create, name="key_create"),
    path("keys/<subkey:sub_key_id>/", keys.key_detail, name="key_detail"),
    path("keys/<subkey:sub_key_id>/edit/", keys.key_edit, name="key_edit"),
    path("keys/<subkey:sub_key_id>/reveal/", keys.key_reveal, name="key_reveal"),
    path("keys/<subkey:sub_key_id>/delete/", keys.key_delete, name="key_delete"),
    path("keys/<subkey:sub_key_id>/topup/", topups.key_topup, name="key_topup"),
    path("keys/<subkey:sub_key_id>/reclaim/", reclaim.key_reclaim, name="key_reclaim"),
    path("topups/", topups.ledger, name="ledger"),
    path("topups/export.csv", topups.ledger_csv, name="ledger_csv"),
    path("exports/<uuid:token>/", export_views.console_export_status, name="export_status"),
    path("exports/<uuid:token>/download/", export_views.console_export_download, name="export_download"),
    path("logs/", logs.usage_logs, name="usage_logs"),
    path("logs/export.csv", logs.usage_logs_csv, name="usage_logs_csv"),
    path("logs/clients/", logs.usage_log_clients, name="usage_log_clients"),
    path("sync/", mirror_views.sync_status, name="sync_status"),
    path("sync/refresh/", mirror_views.mirror_refresh, name="mirror_refresh"),
    path("sync/refresh/poll/", mirror_views.mirror_refresh_poll, name="mirror_refresh_poll"),
    path("audit/", audit.audit_trail, name="audit_trail"),
    path("upstream/", upstream.upstream, name="upstream"),
    path("reconciliation/", reconcile.reconciliation, name="reconciliation"),
    path("reconciliation/run/", reconcile.reconciliation_run, name="reconciliation_run"),
    path("users/", user_views.user_list, name="users"),
    path("users/invite/", user_views.user_invite, name="user_invite"),
    path("users/invitations/<int:invitation_id>/withdraw/", user_views.invitation_withdraw, name="invitation_withdraw"),
    path("users/two-factor-policy/", user_views.two_factor_policy, name="two_factor_policy"),
    path("users/<int:user_id>/", user_views.user_detail, name="user_detail"),
    path("users/<int:user_id>/access/", user_views.user_access, name="user_access"),
    path("users/<int:user_id>/active/", user_views.user_active, name="user_active"),
    path("users/<int:user_id>/margins/", user_views.user_margins, name="user_margins"),
    path("users/<int:user_id>/reset-two-factor/", user_views.user_reset_two_factor, name="user_reset_two_factor"),
    path("account/two-factor/", two_factor_views.two_factor, name="two_factor"),
    path("account/two-factor/recovery-codes/", two_factor_views.recovery_codes, name="recovery_codes"),
]
