"""Fixtures for the operator console: a database filled by `seed_demo`, and Django's test client logged in as an
operator (pytest-django's `admin_client`)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from accounts.models import Team, VirtualKey
from models_registry.models import AccessGroup, Deployment


@pytest.fixture
def seeded(db):
    """examples/config.yaml, five teams, twelve keys and 300 request-log rows (seed_demo, fixed seed)."""
    call_command("seed_demo", requests=300, days=21, seed=3, stdout=_Sink())


class _Sink:
    def write(self, *_):
        pass

    def flush(self):
        pass


def key(alias: str) -> VirtualKey:
    return VirtualKey.objects.select_related("team").get(key_alias=alias)


def team(alias: str) -> Team:
    return Team.objects.get(team_alias=alias)


def deployment(model_name: str) -> Deployment:
    return Deployment.objects.get(model_name=model_name)


def group(name: str) -> AccessGroup:
    return AccessGroup.objects.get(name=name)
