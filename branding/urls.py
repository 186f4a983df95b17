from django.urls import path

from branding import views

app_name = "branding"

urlpatterns = [
    path("dashboard/branding/", views.settings_page, name="settings"),
    path("portal/brand/logo-<int:version>", views.logo, name="logo"),
    path("portal/brand/colors-<int:version>.css", views.colors, name="colors"),
]
