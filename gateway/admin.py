from django.contrib import admin
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin import money
from accounts.models import VirtualKey
from gateway.models import RequestLog

# The operator console's name; the index adds "spend at a glance" (templates/admin/index.html).
admin.site.site_header = "modelgate operator console"
admin.site.site_title = "modelgate"
admin.site.index_title = "Operator console"
admin.site.enable_nav_sidebar = False  # the key and deployment lists need the width


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    """The request log, read-only: one row per chat-completions call that got past authentication."""

    list_display = (
        "created_at", "key_link", "team_id", "requested_model", "route", "status", "error_code", "prompt_tokens",
        "completion_tokens", "cost_display", "latency_ms",
    )  # fmt: skip
    list_filter = ("status", "error_code", "stream", "usage_source", "route")
    search_fields = ("request_id", "key_name", "key_hash", "team_id", "requested_model")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)

    def get_queryset(self, request):
        key_pk = VirtualKey.objects.filter(key_hash=OuterRef("key_hash")).values("pk")[:1]
        return super().get_queryset(request).defer("request_body", "response_body").annotate(key_pk=Subquery(key_pk))

    @admin.display(description="key", ordering="key_name")
    def key_link(self, row: RequestLog) -> str:
        pk = getattr(row, "key_pk", None)
        if pk is None:  # the key was deleted since (the log keeps its name)
            return row.key_name
        return format_html('<a href="{}">{}</a>', reverse("admin:accounts_virtualkey_change", args=[pk]), row.key_name)

    @admin.display(description="cost", ordering="cost")
    def cost_display(self, row: RequestLog) -> str:
        return money(row.cost)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
