from django.contrib import admin, messages

from accounts import services
from accounts.models import Team, VirtualKey


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("team_id", "team_alias", "models", "spend", "max_budget", "blocked", "created_at")
    search_fields = ("team_id", "team_alias")
    list_filter = ("blocked",)
    readonly_fields = ("spend", "created_at", "updated_at")


@admin.register(VirtualKey)
class VirtualKeyAdmin(admin.ModelAdmin):
    list_display = ("key_preview", "key_alias", "team", "models", "spend", "max_budget", "expires", "blocked")
    list_select_related = ("team",)
    list_filter = ("blocked", "team")
    search_fields = ("key_alias", "key_preview")
    readonly_fields = ("key_preview", "key_hash", "spend", "created_at", "updated_at")
    actions = ("block_keys", "unblock_keys")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new key gets its secret from the service; the plaintext is shown here once and never stored.
        row, plaintext = services.key_generate(
            models=obj.models or [],
            team_id=obj.team_id,
            key_alias=obj.key_alias,
            max_budget=obj.max_budget,
            budget_duration=obj.budget_duration,
            metadata=obj.metadata,
            rpm_limit=obj.rpm_limit,
            tpm_limit=obj.tpm_limit,
            max_parallel_requests=obj.max_parallel_requests,
            blocked=obj.blocked,
        )
        row.expires = obj.expires
        row.save(update_fields=["expires"])
        obj.pk = row.pk
        obj.key_hash, obj.key_preview = row.key_hash, row.key_preview
        messages.warning(request, f"New key: {plaintext} — copy it now; it will not be shown again.")

    @admin.action(description="Block selected keys")
    def block_keys(self, request, queryset):
        for row in queryset:
            services.key_set_blocked(row, True)

    @admin.action(description="Unblock selected keys")
    def unblock_keys(self, request, queryset):
        for row in queryset:
            services.key_set_blocked(row, False)
