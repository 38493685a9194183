"""Drop this process's cached key snapshots whenever a key or team changes here (other processes: within the TTL)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.auth import invalidate_grants
from accounts.models import Team, VirtualKey


@receiver([post_save, post_delete], sender=VirtualKey)
@receiver([post_save, post_delete], sender=Team)
def _keys_changed(sender, **kwargs) -> None:
    invalidate_grants()
