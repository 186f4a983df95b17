from django.urls import path

from automation.views import budget_queue, keys, rules, webhooks

app_name = "automation"

urlpatterns = [
    path("", rules.overview, name="overview"),
    path("alerts/", rules.alert_rules, name="alert_rules"),
    path("alerts/history/", rules.alert_history, name="alert_history"),
    path("alerts/<int:pk>/delete/", rules.rule_delete, {"kind": "alert"}, name="alert_rule_delete"),
    path("auto-topups/", rules.auto_topups, name="auto_topups"),
    path("auto-topups/<int:pk>/delete/", rules.rule_delete, {"kind": "auto-topup"}, name="auto_topup_delete"),
    path("allowances/", rules.allowances, name="allowances"),
    path("allowances/<int:pk>/delete/", rules.rule_delete, {"kind": "allowance"}, name="allowance_delete"),
    path("expiries/", rules.expiries, name="expiries"),
    path("expiries/<int:pk>/cancel/", rules.rule_delete, {"kind": "expiry"}, name="expiry_cancel"),
    path("webhooks/", webhooks.endpoint_list, name="webhooks"),
    path("webhooks/<int:pk>/", webhooks.endpoint_detail, name="webhook_detail"),
    path("webhooks/<int:pk>/toggle/", webhooks.endpoint_toggle, name="webhook_toggle"),
    path("webhooks/<int:pk>/delete/", webhooks.endpoint_delete, name="webhook_delete"),
    path("webhooks/deliveries/<int:pk>/send-again/", webhooks.delivery_send_again, name="delivery_send_again"),
    path("keys/<str:sub_key_id>/rotate/", keys.key_rotate, name="key_rotate"),
    path("rotations/<int:pk>/", keys.rotation_detail, name="rotation_detail"),
    path("rotations/<int:pk>/finish/", keys.rotation_finish, name="rotation_finish"),
    path("requests/", budget_queue.queue, name="requests"),
    path("requests/<int:pk>/approve/", budget_queue.approve, name="request_approve"),
    path("requests/<int:pk>/decline/", budget_queue.decline, name="request_decline"),
]
