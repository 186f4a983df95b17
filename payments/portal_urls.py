from django.urls import path

from payments import portal_views

app_name = "portal_codes"

urlpatterns = [
    path("", portal_views.redeem, name="redeem"),
]
