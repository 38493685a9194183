from django.contrib import admin

from gateway.models import RequestLog


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    """The request log, read-only: one row per chat-completions call that got past authentication."""

    list_display = (
        "created_at", "key_name", "team_id", "requested_model", "route", "status", "error_code", "prompt_tokens",
        "completion_tokens", "cost", "latency_ms",
    )  # fmt: skip
    list_filter = ("status", "error_code", "stream", "usage_source", "route")
    search_fields = ("request_id", "key_name", "key_hash", "team_id", "requested_model")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
