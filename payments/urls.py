from django.urls import path

from payments import views

app_name = "payments"

urlpatterns = [
    path("codes/", views.batch_list, name="code_batches"),
    path("codes/new/", views.batch_create, name="code_batch_create"),
    path("codes/settings/", views.code_settings, name="code_settings"),
    path("codes/<int:batch_id>/", views.batch_detail, name="code_batch"),
    path("codes/<int:batch_id>/codes.csv", views.batch_csv, name="code_batch_csv"),
    path("codes/<int:batch_id>/revoke/", views.revoke, name="code_revoke"),
]
