from django.urls import path

from analytics import portal_views as statement_views
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
    path("statements/", statement_views.statements, name="statements"),
    path("statements/<str:month>/", statement_views.statement, name="statement"),
    path("statements/<str:month>.csv", statement_views.statement_csv, name="statement_csv"),
]
