from django.urls import path

from lineage import views

urlpatterns = [
    path("lineage/", views.lineage, name="lineage"),
    path("lineage/<uuid:execution_id>/<str:step_name>/", views.lineage_step, name="lineage_step"),
]
