from django.contrib import admin

from models_registry.models import AccessGroup, Deployment


@admin.register(AccessGroup)
class AccessGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "from_config", "created_at")
    search_fields = ("name",)


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("model_name", "litellm_model", "api_base", "source", "position")
    list_filter = ("source",)
    search_fields = ("model_name", "litellm_model")
    filter_horizontal = ("access_groups",)
    readonly_fields = ("source", "config_key", "created_at", "updated_at")
