from __future__ import annotations

import uuid

from django.db import models as db
from django.utils import timezone


def _team_id() -> str:
    return str(uuid.uuid4())


class Team(db.Model):
    """A group of virtual keys that share a model grant list (the team layer of SPEC §3) and, later, a budget."""

    team_id = db.CharField(max_length=128, primary_key=True, default=_team_id)
    team_alias = db.CharField(max_length=200, null=True, blank=True, unique=True)
    models = db.JSONField(
        default=list, blank=True, help_text="Grant list: model names, wildcard patterns, access groups; empty = any."
    )
    max_budget = db.FloatField(null=True, blank=True)
    spend = db.FloatField(default=0.0)
    budget_duration = db.CharField(max_length=20, null=True, blank=True)
    budget_reset_at = db.DateTimeField(null=True, blank=True, help_text="When spend next resets to 0.")
    rpm_limit = db.PositiveIntegerField(null=True, blank=True)
    tpm_limit = db.PositiveIntegerField(null=True, blank=True)
    max_parallel_requests = db.PositiveIntegerField(null=True, blank=True)
    blocked = db.BooleanField(default=False)
    metadata = db.JSONField(default=dict, blank=True)
    created_at = db.DateTimeField(auto_now_add=True)
    updated_at = db.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.team_alias or self.team_id


class VirtualKey(db.Model):
    """A key handed to a client instead of a provider key. Only its SHA-256 hash and a short preview are stored.

    The plaintext is returned once, by /key/generate (or regenerate), and can never be read back.
    """

    key_hash = db.CharField(max_length=64, unique=True, help_text="SHA-256 hex of the whole key.")
    key_preview = db.CharField(max_length=20, help_text="sk-... and the last four characters.")
    key_alias = db.CharField(max_length=200, null=True, blank=True, unique=True)
    team = db.ForeignKey(Team, null=True, blank=True, on_delete=db.PROTECT, related_name="keys")
    models = db.JSONField(
        default=list, blank=True, help_text="Grant list: model names, wildcard patterns, access groups; empty = any."
    )
    max_budget = db.FloatField(null=True, blank=True)
    spend = db.FloatField(default=0.0)
    budget_duration = db.CharField(max_length=20, null=True, blank=True)
    budget_reset_at = db.DateTimeField(null=True, blank=True, help_text="When spend next resets to 0.")
    rpm_limit = db.PositiveIntegerField(null=True, blank=True)
    tpm_limit = db.PositiveIntegerField(null=True, blank=True)
    max_parallel_requests = db.PositiveIntegerField(null=True, blank=True)
    last_used_at = db.DateTimeField(null=True, blank=True)
    expires = db.DateTimeField(null=True, blank=True)
    blocked = db.BooleanField(default=False)
    metadata = db.JSONField(default=dict, blank=True)
    created_at = db.DateTimeField(auto_now_add=True)
    updated_at = db.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name = "virtual key"

    def __str__(self) -> str:
        return self.key_alias or self.key_preview

    @property
    def is_expired(self) -> bool:
        return self.expires is not None and self.expires <= timezone.now()
