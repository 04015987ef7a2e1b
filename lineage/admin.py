from django.contrib import admin

from lineage.models import LineageRecord


@admin.register(LineageRecord)
class LineageRecordAdmin(admin.ModelAdmin):
    list_display = ["execution", "step_number", "step_name", "status", "duration_ms", "recorded_at"]
    list_filter = ["status", "step_name"]
    search_fields = ["execution__execution_id", "step_name", "error"]
    list_select_related = ["execution__strategy"]
    date_hierarchy = "recorded_at"
