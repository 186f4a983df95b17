from django.urls import path

from payments import order_views, views

app_name = "payments"

urlpatterns = [
    path("codes/", views.batch_list, name="code_batches"),
    path("codes/new/", views.batch_create, name="code_batch_create"),
    path("codes/settings/", views.code_settings, name="code_settings"),
    path("codes/<int:batch_id>/", views.batch_detail, name="code_batch"),
    path("codes/<int:batch_id>/codes.csv", views.batch_csv, name="code_batch_csv"),
    path("codes/<int:batch_id>/revoke/", views.revoke, name="code_revoke"),
]

urlpatterns += [
    path("cards/", order_views.card_settings, name="card_settings"),
    path("cards/packages/", order_views.package_add, name="package_add"),
    path("cards/packages/<int:package_id>/toggle/", order_views.package_toggle, name="package_toggle"),
    path("orders/", order_views.order_list, name="orders"),
    path("orders/<int:order_id>/refund/", order_views.order_refund, name="order_refund"),
    path("orders/<int:order_id>/retry/", order_views.order_retry, name="order_retry"),
]

urlpatterns += [path("check/", order_views.money_in_check, name="money_in_check")]
