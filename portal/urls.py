from django.urls import path

from analytics import portal_views as statement_views
from exports import views as export_views
from portal import language_views, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("reveal/", views.reveal, name="reveal"),
    path("logs/", views.logs, name="logs"),
    path("logs/export.csv", views.logs_csv, name="logs_csv"),
    path("timezone/", views.set_time_zone, name="timezone"),
    path("language/", language_views.set_language, name="language"),
    path("statements/", statement_views.statements, name="statements"),
    path("statements/<str:month>/", statement_views.statement, name="statement"),
    path("statements/<str:month>.csv", statement_views.statement_csv, name="statement_csv"),
    path("exports/<uuid:token>/", export_views.portal_export_status, name="export_status"),
    path("exports/<uuid:token>/download/", export_views.portal_export_download, name="export_download"),
]
