from django.urls import path

from exports import views as export_views
from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("reveal/", views.reveal, name="reveal"),
    path("logs/", views.logs, name="logs"),
    path("logs/export.csv", views.logs_csv, name="logs_csv"),
    path("timezone/", views.set_time_zone, name="timezone"),
    path("exports/<uuid:token>/", export_views.portal_export_status, name="export_status"),
    path("exports/<uuid:token>/download/", export_views.portal_export_download, name="export_download"),
]
