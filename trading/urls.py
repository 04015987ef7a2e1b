from django.urls import path

from trading import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("kill-switch/", views.kill_switch, name="kill_switch"),
    path("ibkr/", views.ibkr, name="ibkr"),
    path("ibkr/<int:connection_id>/questions/", views.ibkr_questions, name="ibkr_questions"),
    path("indicators/", views.indicator_list, name="indicator_list"),
    path("indicators/defaults/", views.indicator_defaults, name="indicator_defaults"),
    path("indicators/<int:indicator_id>/", views.indicator_edit, name="indicator_edit"),
    path("indicators/<int:indicator_id>/delete/", views.indicator_delete, name="indicator_delete"),
    path("strategies/", views.strategy_list, name="strategy_list"),
    path("strategies/new/", views.strategy_create, name="strategy_create"),
    path("strategies/new/<str:step>/", views.strategy_create, name="strategy_create_step"),
    path("strategies/<int:strategy_id>/", views.strategy_detail, name="strategy_detail"),
    path("strategies/<int:strategy_id>/edit/", views.strategy_edit, name="strategy_edit"),
    path("strategies/<int:strategy_id>/pause/", views.strategy_pause, name="strategy_pause"),
    path("strategies/<int:strategy_id>/resume/", views.strategy_resume, name="strategy_resume"),
    path("strategies/<int:strategy_id>/run/", views.strategy_run, name="strategy_run"),
    path("strategies/<int:strategy_id>/delete/", views.strategy_delete, name="strategy_delete"),
    path("logs/", views.logs, name="logs"),
    path("settings/", views.settings_view, name="settings"),
]
