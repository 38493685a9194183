"""Drop this process's cached route table whenever a deployment or access group changes here."""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from models_registry.models import AccessGroup, Deployment
from models_registry.registry import invalidate_routes


@receiver([post_save, post_delete], sender=Deployment)
@receiver([post_save, post_delete], sender=AccessGroup)
@receiver(m2m_changed, sender=Deployment.access_groups.through)
def _routes_changed(sender, **kwargs) -> None:
    invalidate_routes()
