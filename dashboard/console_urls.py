from django.urls import path, register_converter

from dashboard.converters import SubKeyIdConverter
from dashboard.views import audit, keys, logs, overview, topups

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
    path("topups/", topups.ledger, name="ledger"),
    path("topups/export.csv", topups.ledger_csv, name="ledger_csv"),
    path("logs/", logs.usage_logs, name="usage_logs"),
    path("audit/", audit.audit_trail, name="audit_trail"),
]
