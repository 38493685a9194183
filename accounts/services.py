"""The only writers of keys and teams. DRF views, admin actions and management commands all call these, so a rule
such as "a key's models must be allowed by its team" is enforced in one place.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.access import team_allows_entry
from accounts.auth import hash_key, invalidate_grants, preview
from accounts.durations import DURATION_HELP, add_duration, is_duration
from accounts.models import Team, VirtualKey
from gateway.errors import InvalidRequestError, NotFoundError
from models_registry.registry import current_routes

KEY_PREFIX = "sk-"
MIN_CUSTOM_KEY_LENGTH = 8

_UNSET: Any = object()


def new_key_plaintext() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)  # 32 URL-safe characters after the prefix


# --- lookups ------------------------------------------------------------------------------------------------------
def key_get(identifier: str, *, param: str = "key") -> VirtualKey:
    """A key by its plaintext (`sk-...`) or by its hash (the `token` /key/generate returned)."""
    if not isinstance(identifier, str) or not identifier:
        raise InvalidRequestError("Say which key: pass the key (sk-...) or its token.", param=param)
    key_hash = hash_key(identifier) if identifier.startswith(KEY_PREFIX) else identifier.lower()
    row = VirtualKey.objects.select_related("team").filter(key_hash=key_hash).first()
    if row is None:
        raise NotFoundError("No such key. Check the key or token you passed (GET /key/list shows them).", param=param)
    return row


def team_get(team_id: str, *, param: str = "team_id") -> Team:
    row = Team.objects.filter(team_id=team_id).first()
    if row is None:
        raise NotFoundError(f"No team with team_id '{team_id}'. GET /team/list shows the teams.", param=param)
    return row


# --- validation ---------------------------------------------------------------------------------------------------
def _check_duration(value: str | None, field: str) -> None:
    if value is None:
        return
    try:
        fits = is_duration(value) and add_duration(timezone.now(), value) is not None
    except (ValueError, OverflowError):  # parses, but lands beyond the calendar (e.g. 99999999999d)
        fits = False
    if not fits:
        raise InvalidRequestError(f"'{field}' must be {DURATION_HELP}; got '{value}'.", param=field)


def _team_for_key(team_id: str) -> Team:
    """The team a key body names; a missing team is a bad field of that body (SPEC §4: 400), not a 404."""
    row = Team.objects.filter(team_id=team_id).first()
    if row is None:
        raise InvalidRequestError(f"No team with team_id '{team_id}'. GET /team/list shows the teams.", param="team_id")
    return row


def validate_key_models(models: Sequence[str], team: Team | None) -> None:
    """Every entry of a key's grant list must be one its team layer would allow (SPEC §4)."""
    if team is None or not team.models:
        return
    table = current_routes()
    for entry in models:
        if not team_allows_entry(team.models, entry, table):
            raise InvalidRequestError(
                f"Model '{entry}' is not allowed for team '{team}', so a key of that team cannot list it. "
                f"Team models: {', '.join(team.models)}. Use one of those, or 'all-team-models'.",
                param="models",
            )


def _first_reset(budget_duration: str | None):
    return add_duration(timezone.now(), budget_duration) if budget_duration else None


def _restart_budget_period(row: VirtualKey | Team, changes: dict) -> None:
    """A new budget_duration starts a new period now (spend carries over until that period ends)."""
    if "budget_duration" in changes and changes["budget_duration"] != row.budget_duration:
        changes["budget_reset_at"] = _first_reset(changes["budget_duration"])


def _check_alias_free(model, field: str, value: str | None, exclude_pk=None) -> None:
    if value is None:
        return
    taken = model.objects.filter(**{field: value})
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise InvalidRequestError(f"{field} '{value}' is already in use; pick another.", param=field)


@contextmanager
def _unique_or_400(what: str, param: str):
    """The pre-checks above answer the common case; two requests racing for one alias meet the unique constraint
    here, and get the same 400 instead of a 500."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        raise InvalidRequestError(f"{what} is already in use; pick another.", param=param) from exc


# --- keys ---------------------------------------------------------------------------------------------------------
@transaction.atomic
def key_generate(
    *,
    models: Sequence[str] = (),
    team_id: str | None = None,
    key_alias: str | None = None,
    max_budget: float | None = None,
    budget_duration: str | None = None,
    duration: str | None = None,
    metadata: dict | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    max_parallel_requests: int | None = None,
    blocked: bool = False,
    key: str | None = None,
) -> tuple[VirtualKey, str]:
    """Create a key; returns the row and the plaintext, which is never stored and never shown again."""
    team = _team_for_key(team_id) if team_id is not None else None
    _check_duration(duration, "duration")
    _check_duration(budget_duration, "budget_duration")
    validate_key_models(models, team)
    _check_alias_free(VirtualKey, "key_alias", key_alias)
    if key is not None:
        if not key.startswith(KEY_PREFIX) or len(key) < MIN_CUSTOM_KEY_LENGTH or any(c.isspace() for c in key):
            raise InvalidRequestError(
                f"A custom 'key' must start with '{KEY_PREFIX}', have at least {MIN_CUSTOM_KEY_LENGTH} characters "
                "and no spaces.",
                param="key",
            )
        if VirtualKey.objects.filter(key_hash=hash_key(key)).exists():
            raise InvalidRequestError("That key already exists; choose another or omit 'key'.", param="key")
    plaintext = key or new_key_plaintext()
    with _unique_or_400("That key or key_alias", "key_alias"):
        row = VirtualKey.objects.create(
            key_hash=hash_key(plaintext),
            key_preview=preview(plaintext),
            key_alias=key_alias,
            team=team,
            models=list(models),
            max_budget=max_budget,
            budget_duration=budget_duration,
            budget_reset_at=_first_reset(budget_duration),
            expires=add_duration(timezone.now(), duration) if duration else None,
            metadata=metadata or {},
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
            max_parallel_requests=max_parallel_requests,
            blocked=blocked,
        )
    return row, plaintext


@transaction.atomic
def key_update(row: VirtualKey, **changes: Any) -> VirtualKey:
    """Change the given fields. `team_id=None` takes the key out of its team; `duration` restarts expiry from now."""
    if "team_id" in changes:
        team_id = changes.pop("team_id")
        row.team = _team_for_key(team_id) if team_id is not None else None
    if "duration" in changes:
        duration = changes.pop("duration")
        _check_duration(duration, "duration")
        row.expires = add_duration(timezone.now(), duration) if duration else None
    _check_duration(changes.get("budget_duration"), "budget_duration")
    if "key_alias" in changes:
        _check_alias_free(VirtualKey, "key_alias", changes["key_alias"], exclude_pk=row.pk)
    if "metadata" in changes and changes["metadata"] is None:
        changes["metadata"] = {}
    if "models" in changes:
        changes["models"] = list(changes["models"] or [])
    _restart_budget_period(row, changes)
    for field, value in changes.items():
        setattr(row, field, value)
    validate_key_models(row.models, row.team)
    with _unique_or_400("That key_alias", "key_alias"):
        row.save()
    return row


def key_set_blocked(row: VirtualKey, blocked: bool) -> VirtualKey:
    row.blocked = blocked
    row.save(update_fields=["blocked", "updated_at"])
    return row


@transaction.atomic
def key_regenerate(row: VirtualKey) -> tuple[VirtualKey, str]:
    """New secret, same settings: the old plaintext stops working at once."""
    plaintext = new_key_plaintext()
    row.key_hash = hash_key(plaintext)
    row.key_preview = preview(plaintext)
    row.save(update_fields=["key_hash", "key_preview", "updated_at"])
    return row, plaintext


@transaction.atomic
def keys_delete(rows: Sequence[VirtualKey]) -> list[str]:
    hashes = [row.key_hash for row in rows]
    VirtualKey.objects.filter(pk__in=[row.pk for row in rows]).delete()
    invalidate_grants()
    return hashes


# --- teams --------------------------------------------------------------------------------------------------------
@transaction.atomic
def team_create(
    *,
    team_id: str | None = None,
    team_alias: str | None = None,
    models: Sequence[str] = (),
    max_budget: float | None = None,
    budget_duration: str | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    max_parallel_requests: int | None = None,
    blocked: bool = False,
    metadata: dict | None = None,
) -> Team:
    _check_duration(budget_duration, "budget_duration")
    if team_id is not None and Team.objects.filter(team_id=team_id).exists():
        raise InvalidRequestError(f"team_id '{team_id}' already exists; pick another or omit it.", param="team_id")
    _check_alias_free(Team, "team_alias", team_alias)
    fields = dict(
        team_alias=team_alias,
        models=list(models),
        max_budget=max_budget,
        budget_duration=budget_duration,
        budget_reset_at=_first_reset(budget_duration),
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        max_parallel_requests=max_parallel_requests,
        blocked=blocked,
        metadata=metadata or {},
    )
    if team_id is not None:
        fields["team_id"] = team_id
    with _unique_or_400("That team_id or team_alias", "team_alias"):
        return Team.objects.create(**fields)


@transaction.atomic
def team_update(team: Team, **changes: Any) -> Team:
    _check_duration(changes.get("budget_duration"), "budget_duration")
    if "team_alias" in changes:
        _check_alias_free(Team, "team_alias", changes["team_alias"], exclude_pk=team.pk)
    if "metadata" in changes and changes["metadata"] is None:
        changes["metadata"] = {}
    if "models" in changes:
        changes["models"] = list(changes["models"] or [])
    _restart_budget_period(team, changes)
    for field, value in changes.items():
        setattr(team, field, value)
    with _unique_or_400("That team_alias", "team_alias"):
        team.save()
    return team


def team_set_blocked(team: Team, blocked: bool) -> Team:
    team.blocked = blocked
    team.save(update_fields=["blocked", "updated_at"])
    return team


@transaction.atomic
def teams_delete(teams: Sequence[Team], *, delete_keys: bool = False) -> list[str]:
    """Delete teams. A team that still has keys is refused unless `delete_keys` deletes them with it (SPEC §4)."""
    for team in teams:
        count = team.keys.count()
        if count and not delete_keys:
            raise InvalidRequestError(
                f"Team '{team}' still has {count} key(s). Delete or move them first, or pass ?delete_keys=true "
                "to delete them with the team.",
                param="team_ids",
            )
    ids = [team.team_id for team in teams]
    VirtualKey.objects.filter(team_id__in=ids).delete()
    Team.objects.filter(team_id__in=ids).delete()
    invalidate_grants()
    return ids
