from django.urls import path

from replays import views

urlpatterns = [
    path("", views.replay_list, name="replay_list"),
    path("compare/", views.replay_compare, name="replay_compare"),
    path("<int:replay_id>/", views.replay_detail, name="replay_detail"),
    path("<int:replay_id>/plot.png", views.replay_plot, name="replay_plot"),
    path("<int:replay_id>/delete/", views.replay_delete, name="replay_delete"),
    path("<int:replay_id>/resume/", views.replay_resume, name="replay_resume"),
]
