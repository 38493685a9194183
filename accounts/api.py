"""Management API for keys and teams: one APIView per LiteLLM path, each validating its input and calling one
service. Field names follow LiteLLM's proxy (SPEC §4)."""

from __future__ import annotations

import hmac

from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.access import check_key_status
from accounts.auth import authenticate, hash_key, require_master
from accounts.models import Team, VirtualKey
from gateway.api import (
    MasterKeyApi,
    StrictBooleanField,
    StrictCharField,
    StrictDictField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    model_list_field,
)
from gateway.errors import InvalidRequestError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def key_as_dict(row: VirtualKey) -> dict:
    return {
        "token": row.key_hash,
        "key_name": row.key_preview,
        "key_alias": row.key_alias,
        "team_id": row.team_id,
        "models": row.models,
        "max_budget": row.max_budget,
        "spend": row.spend,
        "budget_duration": row.budget_duration,
        "budget_reset_at": _iso(row.budget_reset_at),
        "expires": _iso(row.expires),
        "blocked": row.blocked,
        "metadata": row.metadata,
        "rpm_limit": row.rpm_limit,
        "tpm_limit": row.tpm_limit,
        "max_parallel_requests": row.max_parallel_requests,
        "last_used_at": _iso(row.last_used_at),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def team_as_dict(team: Team) -> dict:
    return {
        "team_id": team.team_id,
        "team_alias": team.team_alias,
        "models": team.models,
        "max_budget": team.max_budget,
        "spend": team.spend,
        "budget_duration": team.budget_duration,
        "budget_reset_at": _iso(team.budget_reset_at),
        "rpm_limit": team.rpm_limit,
        "tpm_limit": team.tpm_limit,
        "max_parallel_requests": team.max_parallel_requests,
        "blocked": team.blocked,
        "metadata": team.metadata,
        "created_at": _iso(team.created_at),
        "updated_at": _iso(team.updated_at),
    }


def _bool_param(request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequestError(f"Query parameter '{name}' must be true or false.", param=name)
    return value in ("true", "1")


def _int_param(request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise InvalidRequestError(f"Query parameter '{name}' must be a whole number from {low} to {high}.", param=name)
    return value


def _required_param(request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise InvalidRequestError(f"Pass the query parameter '{name}'.", param=name)
    return value


# --- keys ---------------------------------------------------------------------------------------------------------
class KeyFieldsSerializer(StrictSerializer):
    models = model_list_field(required=False)
    team_id = StrictCharField(required=False, allow_null=True)
    key_alias = StrictCharField(required=False, allow_null=True, max_length=200)
    max_budget = StrictFloatField(required=False, allow_null=True, min_value=0)
    budget_duration = StrictCharField(required=False, allow_null=True, max_length=20)
    duration = StrictCharField(required=False, allow_null=True)
    metadata = StrictDictField(required=False, allow_null=True)
    rpm_limit = StrictIntegerField(required=False, allow_null=True, min_value=0)
    tpm_limit = StrictIntegerField(required=False, allow_null=True, min_value=0)
    max_parallel_requests = StrictIntegerField(required=False, allow_null=True, min_value=0)
    blocked = StrictBooleanField(required=False)


class KeyGenerateApi(MasterKeyApi):
    class InputSerializer(KeyFieldsSerializer):
        key = StrictCharField(required=False, allow_null=True)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row, plaintext = services.key_generate(**serializer.validated_data)
        return Response({**key_as_dict(row), "key": plaintext})


class KeyUpdateApi(MasterKeyApi):
    class InputSerializer(KeyFieldsSerializer):
        key = StrictCharField()

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        row = services.key_get(changes.pop("key"))
        row = services.key_update(row, **changes)
        return Response(key_as_dict(row))


def _names_key(identifier: str, key_hash: str) -> bool:
    """Does `identifier` (plaintext or token) name the key with this hash?"""
    candidate = hash_key(identifier) if identifier.startswith(services.KEY_PREFIX) else identifier.lower()
    return hmac.compare_digest(candidate, key_hash)


class KeyInfoApi(APIView):
    """Master key: any key's info (?key=). A virtual key without ?key=: its own info, as LiteLLM allows."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.grant = authenticate(request._request)
        check_key_status(self.grant, timezone.now())
        asked = request.query_params.get("key")
        if not self.grant.is_master and asked is not None and not _names_key(asked, self.grant.key_hash):
            require_master(request._request)

    def get(self, request):
        if self.grant.is_master:
            row = services.key_get(_required_param(request, "key"))
        else:
            row = services.key_get(self.grant.key_hash)
        return Response({"key": row.key_hash, "info": key_as_dict(row)})


class KeyDeleteApi(MasterKeyApi):
    class InputSerializer(StrictSerializer):
        keys = model_list_field(required=False)
        key_aliases = model_list_field(required=False)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        keys = serializer.validated_data.get("keys", [])
        aliases = serializer.validated_data.get("key_aliases", [])
        if not keys and not aliases:
            raise InvalidRequestError("Pass 'keys' (keys or tokens) or 'key_aliases' to delete.", param="keys")
        rows = [services.key_get(identifier, param="keys") for identifier in keys]
        for alias in aliases:
            row = VirtualKey.objects.filter(key_alias=alias).first()
            if row is None:
                raise InvalidRequestError(f"No key with key_alias '{alias}'.", param="key_aliases")
            rows.append(row)
        return Response({"deleted_keys": services.keys_delete(rows)})


class KeyBlockApi(MasterKeyApi):
    blocked = True

    class InputSerializer(StrictSerializer):
        key = StrictCharField()

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = services.key_set_blocked(services.key_get(serializer.validated_data["key"]), self.blocked)
        return Response(key_as_dict(row))


class KeyUnblockApi(KeyBlockApi):
    blocked = False


class KeyRegenerateApi(MasterKeyApi):
    class InputSerializer(StrictSerializer):
        key = StrictCharField()

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row, plaintext = services.key_regenerate(services.key_get(serializer.validated_data["key"]))
        return Response({**key_as_dict(row), "key": plaintext})


class KeyListApi(MasterKeyApi):
    def get(self, request):
        rows = VirtualKey.objects.select_related("team").order_by("created_at", "id")
        if request.query_params.get("team_id"):
            rows = rows.filter(team_id=request.query_params["team_id"])
        if request.query_params.get("key_alias"):
            rows = rows.filter(key_alias=request.query_params["key_alias"])
        page = _int_param(request, "page", 1, low=1, high=10**9)
        size = _int_param(request, "size", DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
        total = rows.count()
        chunk = list(rows[(page - 1) * size : page * size])
        full = _bool_param(request, "return_full_object")
        return Response(
            {
                "keys": [key_as_dict(row) if full else row.key_hash for row in chunk],
                "total_count": total,
                "current_page": page,
                "total_pages": max(1, -(-total // size)),
            }
        )


# --- teams --------------------------------------------------------------------------------------------------------
class TeamFieldsSerializer(StrictSerializer):
    team_alias = StrictCharField(required=False, allow_null=True, max_length=200)
    models = model_list_field(required=False)
    max_budget = StrictFloatField(required=False, allow_null=True, min_value=0)
    budget_duration = StrictCharField(required=False, allow_null=True, max_length=20)
    rpm_limit = StrictIntegerField(required=False, allow_null=True, min_value=0)
    tpm_limit = StrictIntegerField(required=False, allow_null=True, min_value=0)
    max_parallel_requests = StrictIntegerField(required=False, allow_null=True, min_value=0)
    blocked = StrictBooleanField(required=False)
    metadata = StrictDictField(required=False, allow_null=True)


class TeamNewApi(MasterKeyApi):
    class InputSerializer(TeamFieldsSerializer):
        team_id = StrictCharField(required=False, max_length=128)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(team_as_dict(services.team_create(**serializer.validated_data)))


class TeamUpdateApi(MasterKeyApi):
    class InputSerializer(TeamFieldsSerializer):
        team_id = StrictCharField()

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        team = services.team_get(changes.pop("team_id"))
        return Response(team_as_dict(services.team_update(team, **changes)))


class TeamInfoApi(MasterKeyApi):
    def get(self, request):
        team = services.team_get(_required_param(request, "team_id"))
        keys = [key_as_dict(row) for row in team.keys.order_by("created_at", "id")]
        return Response({"team_id": team.team_id, "team_info": team_as_dict(team), "keys": keys})


class TeamDeleteApi(MasterKeyApi):
    class InputSerializer(StrictSerializer):
        team_ids = model_list_field(allow_empty=False)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        teams = [services.team_get(team_id, param="team_ids") for team_id in serializer.validated_data["team_ids"]]
        deleted = services.teams_delete(teams, delete_keys=_bool_param(request, "delete_keys"))
        return Response({"deleted_teams": deleted})


class TeamListApi(MasterKeyApi):
    def get(self, request):
        return Response([team_as_dict(team) for team in Team.objects.order_by("created_at", "team_id")])
