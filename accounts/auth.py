"""Who is calling: read the key from the request, compare the master key in constant time, and resolve a virtual
key to a KeyGrant snapshot, from memory once warm (no database query per request within the TTL).
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest

from accounts.access import KeyGrant
from accounts.budgets import Limits
from accounts.models import Team, VirtualKey
from gateway.errors import AdminOnlyError, InvalidKeyError
from gateway.ttlcache import TTLCache

_grants: TTLCache[KeyGrant | None] = TTLCache(lambda: settings.MODELGATE_AUTH_CACHE_TTL)

MASTER_GRANT = KeyGrant(key_hash="", key_preview="master key", is_master=True, key_alias="master key")

NO_KEY_MESSAGE = (
    "No API key provided. Send your modelgate key as 'Authorization: Bearer sk-...' "
    "(or in an 'api-key' or 'x-api-key' header)."
)
BAD_KEY_MESSAGE = "Invalid API key. Check the key you are sending, or ask your admin for a new one."


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def preview(plaintext: str) -> str:
    return f"sk-...{plaintext[-4:]}"


@functools.lru_cache(maxsize=4)
def _master_key(from_settings: str, config_path: str) -> str:
    if from_settings:
        return from_settings
    if config_path:
        from models_registry.config import read_master_key

        return read_master_key(config_path) or ""
    return ""


def master_key() -> str:
    return _master_key(settings.MODELGATE_MASTER_KEY, settings.MODELGATE_CONFIG)


def is_master(plaintext: str) -> bool:
    expected = master_key()
    return bool(expected) and hmac.compare_digest(plaintext.encode("utf-8"), expected.encode("utf-8"))


def key_from_request(request: HttpRequest) -> str:
    """The key from `Authorization: Bearer`, else `api-key`, else `x-api-key` (SPEC §4).

    Read from META by their WSGI names rather than through `request.headers`, which builds a map of every header."""
    meta = request.META
    header = meta.get("HTTP_AUTHORIZATION")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise InvalidKeyError("Malformed Authorization header. Send it as 'Authorization: Bearer sk-...'.")
        return token
    for name in ("HTTP_API_KEY", "HTTP_X_API_KEY"):
        value = meta.get(name)
        if value:
            return value.strip()
    raise InvalidKeyError(NO_KEY_MESSAGE)


def _load_grant(key_hash: str) -> KeyGrant | None:
    row = VirtualKey.objects.select_related("team").filter(key_hash=key_hash).first()
    if row is None:
        return None
    return grant_for(row)


def _limits(row: VirtualKey | Team, owner: str, label: str) -> Limits | None:
    limits = Limits(
        owner=owner,
        label=label,
        max_budget=row.max_budget,
        spend=row.spend,
        budget_duration=row.budget_duration,
        budget_reset_at=row.budget_reset_at,
        rpm=row.rpm_limit,
        tpm=row.tpm_limit,
        parallel=row.max_parallel_requests,
    )
    return limits if limits.any else None


def grant_for(row: VirtualKey) -> KeyGrant:
    team = row.team
    return KeyGrant(
        key_hash=row.key_hash,
        key_preview=row.key_preview,
        models=tuple(row.models or ()),
        key_id=row.pk,
        key_alias=row.key_alias,
        team_id=team.team_id if team else None,
        team_alias=team.team_alias if team else None,
        team_models=tuple(team.models or ()) if team else (),
        expires=row.expires,
        blocked=row.blocked,
        team_blocked=team.blocked if team else False,
        key_limits=_limits(row, f"k{row.pk}", f"Key '{row}'"),
        team_limits=_limits(team, f"t{team.team_id}", f"Team '{team}'") if team else None,
    )


def grant_for_key(plaintext: str) -> KeyGrant:
    """Master key or a virtual key's snapshot; the same answer for 'no such key' and 'wrong key'."""
    if is_master(plaintext):
        return MASTER_GRANT
    key_hash = hash_key(plaintext)
    grant = _grants.get_or_load(key_hash, lambda: _load_grant(key_hash))
    if grant is None:
        raise InvalidKeyError(BAD_KEY_MESSAGE)
    return grant


def authenticate(request: HttpRequest) -> KeyGrant:
    return grant_for_key(key_from_request(request))


def require_master(request: HttpRequest) -> KeyGrant:
    grant = authenticate(request)
    if not grant.is_master:
        raise AdminOnlyError("This endpoint needs the master key; virtual keys cannot manage keys, teams or models.")
    return grant


def invalidate_grants() -> None:
    _grants.invalidate()
    if connection.in_atomic_block:
        # drop again once the change is visible, so no request caches what it read before the commit
        transaction.on_commit(_grants.invalidate)
