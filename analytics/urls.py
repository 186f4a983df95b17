from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("analytics/", views.analytics, name="analytics"),
    path("keys/<str:sub_key_id>/statements/<str:month>/", views.statement, name="statement"),
    path("keys/<str:sub_key_id>/statements/<str:month>.csv", views.statement_csv, name="statement_csv"),
]
