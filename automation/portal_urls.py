from django.urls import path

from automation.views import portal

app_name = "portal_requests"

urlpatterns = [
    path("", portal.budget_request, name="budget_request"),
]
