from django.urls import path

from signals_app import views

urlpatterns = [
    path("prompts/", views.prompt_list, name="prompt_list"),
    path("prompts/<int:template_id>/", views.prompt_detail, name="prompt_detail"),
    path("prompts/<int:template_id>/diff/", views.prompt_diff, name="prompt_diff"),
    path("prompts/<int:template_id>/preview/", views.prompt_preview, name="prompt_preview"),
    path("signals/", views.signal_list, name="signal_list"),
    path("signals/<int:signal_id>/", views.signal_detail, name="signal_detail"),
]
