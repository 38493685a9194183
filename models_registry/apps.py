from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    name = "models_registry"
    verbose_name = "Models and access groups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from models_registry import signals  # noqa: F401
