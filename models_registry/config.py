"""Loading LiteLLM's `config.yaml` into the database (SPEC §7).

`load_config(path)` is idempotent: the same file twice changes nothing; an edited file updates what changed and
removes config-managed deployments that vanished; rows an operator created by hand are never touched. A bad file
raises ConfigError naming the entry and field. Settings modelgate does not support yet come back as warnings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from models_registry import providers
from models_registry.models import AccessGroup, Deployment

ENV_PREFIX = "os.environ/"

# litellm_params modelgate uses; anything else is reported as not supported yet.
STRING_PARAMS = ("api_key", "api_base", "api_version")
SUPPORTED_PARAMS = frozenset(
    {
        "model",
        *STRING_PARAMS,
        "timeout",
        "rpm",
        "tpm",
        "weight",
        "mock_response",
        "input_cost_per_token",
        "output_cost_per_token",
    }
)
SUPPORTED_GENERAL = frozenset({"master_key"})
KNOWN_SECTIONS = ("model_list", "general_settings", "router_settings", "litellm_settings", "environment_variables")


class ConfigError(ValueError):
    """The config cannot be loaded; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class DeploymentConfig:
    config_key: str
    position: int
    model_name: str
    litellm_model: str
    api_base: str = ""
    api_key: str = ""
    api_version: str = ""
    timeout: float | None = None
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    mock_response: str | None = None
    model_info: dict = field(default_factory=dict)
    access_groups: tuple[str, ...] = ()

    def row_values(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in ROW_FIELDS}
        values["source"] = Deployment.SOURCE_CONFIG
        return values


ROW_FIELDS = (
    "position",
    "model_name",
    "litellm_model",
    "api_base",
    "api_key",
    "api_version",
    "timeout",
    "weight",
    "rpm",
    "tpm",
    "input_cost_per_token",
    "output_cost_per_token",
    "mock_response",
    "model_info",
)


@dataclass
class ParsedConfig:
    deployments: list[DeploymentConfig]
    master_key: str | None
    warnings: list[str]


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, {len(self.deleted)} removed, "
            f"{len(self.unchanged)} unchanged"
        )


# --- parsing (pure) -----------------------------------------------------------------------------------------------
class _Entry:
    """Type checks for one model_list entry, with error messages that name it."""

    def __init__(self, source: str, index: int, raw: dict):
        self.where = f"{source}: model_list[{index}]"
        name = raw.get("model_name")
        if isinstance(name, str) and name:
            self.where += f" (model_name '{name}')"

    def fail(self, field_name: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: '{field_name}' {problem}")

    def string(self, data: dict, key: str, path: str, *, required: bool = False) -> str:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(path, "is missing")
            return ""
        if not isinstance(value, str) or (required and not value):
            raise self.fail(path, f"must be a non-empty string, not {value!r}")
        return value

    def number(self, data: dict, key: str, path: str, *, integer: bool = False) -> Any:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:  # LiteLLM configs often quote numbers: "0.000002", rpm: "100"
                value = int(value) if integer else float(value)
            except ValueError:
                kind = "a whole number" if integer else "a number"
                raise self.fail(path, f"must be {kind}, not {value!r}") from None
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or value < 0:
            kind = "a whole number" if integer else "a number"
            raise self.fail(path, f"must be {kind} of at least 0, not {value!r}")
        return int(value) if integer else float(value)


def parse_config(text: str, source: str = "config.yaml") -> ParsedConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'model_list'.")
    warnings: list[str] = []
    for key in data:
        if key not in KNOWN_SECTIONS:
            warnings.append(f"{source}: top-level '{key}' is not supported by modelgate yet and was ignored.")
    for section in ("router_settings", "litellm_settings", "environment_variables"):
        value = data.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{section}' must be a mapping.")
        if value:
            warnings.append(
                f"{source}: {section} is not supported by modelgate yet and was ignored: {', '.join(map(str, value))}."
            )

    general = data.get("general_settings") or {}
    if not isinstance(general, dict):
        raise ConfigError(f"{source}: 'general_settings' must be a mapping.")
    unsupported = [k for k in general if k not in SUPPORTED_GENERAL]
    if unsupported:
        warnings.append(
            f"{source}: general_settings not supported by modelgate yet, ignored: {', '.join(map(str, unsupported))}."
        )
    master_key = general.get("master_key")
    if master_key is not None and (not isinstance(master_key, str) or not master_key):
        raise ConfigError(f"{source}: general_settings.master_key must be a non-empty string.")

    model_list = data.get("model_list") or []
    if not isinstance(model_list, list):
        raise ConfigError(f"{source}: 'model_list' must be a list of entries with model_name and litellm_params.")
    deployments: list[DeploymentConfig] = []
    seen_ids: dict[str, int] = {}
    ordinals: dict[str, int] = {}
    for index, raw in enumerate(model_list):
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: model_list[{index}] must be a mapping with model_name and litellm_params.")
        deployment = _parse_entry(source, index, raw, warnings, ordinals)
        if deployment.config_key in seen_ids:
            raise ConfigError(
                f"{source}: model_list[{index}]: model_info.id '{deployment.config_key}' is already used by "
                f"model_list[{seen_ids[deployment.config_key]}]; ids must be unique."
            )
        seen_ids[deployment.config_key] = index
        deployments.append(deployment)
    return ParsedConfig(deployments=deployments, master_key=master_key, warnings=warnings)


def _parse_entry(source: str, index: int, raw: dict, warnings: list[str], ordinals: dict[str, int]) -> DeploymentConfig:
    entry = _Entry(source, index, raw)
    for key in raw:
        if key not in ("model_name", "litellm_params", "model_info"):
            warnings.append(f"{entry.where}: '{key}' is not supported by modelgate yet and was ignored.")
    model_name = entry.string(raw, "model_name", "model_name", required=True)
    params = raw.get("litellm_params")
    if params is None:
        raise entry.fail("litellm_params", "is missing (it needs at least 'model')")
    if not isinstance(params, dict):
        raise entry.fail("litellm_params", "must be a mapping")
    info = raw.get("model_info") or {}
    if not isinstance(info, dict):
        raise entry.fail("model_info", "must be a mapping")

    litellm_model = entry.string(params, "model", "litellm_params.model", required=True)
    strings = {key: entry.string(params, key, f"litellm_params.{key}") for key in STRING_PARAMS}
    ignored = sorted(str(k) for k in params if k not in SUPPORTED_PARAMS)
    if ignored:
        warnings.append(f"{entry.where}: litellm_params not supported by modelgate yet, ignored: {', '.join(ignored)}.")

    provider = providers.split_provider(litellm_model).provider
    if provider in providers.UNSUPPORTED_PROVIDERS:
        warnings.append(
            f"{entry.where}: provider '{provider}' is not OpenAI-compatible and not supported by modelgate yet; "
            "calls to this model will answer 501."
        )
    elif not providers.is_known(provider) and not strings["api_base"]:
        raise entry.fail(
            "litellm_params.api_base",
            f"is needed: provider '{provider}' has no default endpoint. Give the OpenAI-compatible base URL.",
        )
    if "*" in model_name and "*" not in litellm_model and provider != providers.MOCK:
        warnings.append(
            f"{entry.where}: wildcard route with a fixed provider model '{litellm_model}': every name it matches "
            "is sent upstream as that one model."
        )

    groups = info.get("access_groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise entry.fail("model_info.access_groups", f"must be a list of names, not {groups!r}")

    raw_id = info.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == ""):
        raise entry.fail("model_info.id", f"must be a string, not {raw_id!r}")
    if raw_id is not None:
        config_key = str(raw_id)
    else:
        ordinal = ordinals.get(model_name, 0)
        ordinals[model_name] = ordinal + 1
        config_key = f"{model_name}#{ordinal}"

    mock_response = params.get("mock_response")
    if mock_response is not None and not isinstance(mock_response, str):
        raise entry.fail("litellm_params.mock_response", "must be a string")

    def price(key: str) -> float | None:
        value = entry.number(params, key, f"litellm_params.{key}")
        return value if value is not None else entry.number(info, key, f"model_info.{key}")

    timeout = entry.number(params, "timeout", "litellm_params.timeout")
    if timeout == 0:
        raise entry.fail("litellm_params.timeout", "must be more than 0 seconds")
    weight = entry.number(params, "weight", "litellm_params.weight")
    extra_info = {
        k: v
        for k, v in info.items()
        if k not in ("id", "access_groups", "input_cost_per_token", "output_cost_per_token")
    }
    return DeploymentConfig(
        config_key=config_key,
        position=index,
        model_name=model_name,
        litellm_model=litellm_model,
        api_base=strings["api_base"],
        api_key=strings["api_key"],
        api_version=strings["api_version"],
        timeout=timeout,
        weight=1.0 if weight is None else weight,
        rpm=entry.number(params, "rpm", "litellm_params.rpm", integer=True),
        tpm=entry.number(params, "tpm", "litellm_params.tpm", integer=True),
        input_cost_per_token=price("input_cost_per_token"),
        output_cost_per_token=price("output_cost_per_token"),
        mock_response=mock_response,
        model_info=extra_info,
        access_groups=tuple(dict.fromkeys(groups)),
    )


def read_config(path: str | os.PathLike) -> ParsedConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}") from exc
    return parse_config(text, source=str(path))


def resolve_env(value: str, what: str) -> str:
    if not value.startswith(ENV_PREFIX):
        return value
    name = value[len(ENV_PREFIX) :]
    resolved = os.environ.get(name)
    if resolved is None:
        raise ConfigError(f"{what} reads environment variable {name}, which is not set.")
    return resolved


def read_master_key(path: str | os.PathLike) -> str | None:
    parsed = read_config(path)
    if parsed.master_key is None:
        return None
    return resolve_env(parsed.master_key, "general_settings.master_key")


# --- applying (database) ------------------------------------------------------------------------------------------
@transaction.atomic
def apply_config(parsed: ParsedConfig) -> LoadReport:
    report = LoadReport(warnings=list(parsed.warnings))
    existing = {
        row.config_key: row
        for row in Deployment.objects.filter(source=Deployment.SOURCE_CONFIG).prefetch_related("access_groups")
    }
    groups = _ensure_groups({g for d in parsed.deployments for g in d.access_groups})
    wanted = set()
    for item in parsed.deployments:
        wanted.add(item.config_key)
        label = f"{item.model_name} ({item.config_key})"
        row = existing.get(item.config_key)
        values = item.row_values()
        if row is None:
            row = Deployment.objects.create(config_key=item.config_key, **values)
            row.access_groups.set([groups[g] for g in item.access_groups])
            report.created.append(label)
            continue
        changed = [name for name, value in values.items() if getattr(row, name) != value]
        groups_changed = {g.name for g in row.access_groups.all()} != set(item.access_groups)
        if changed:
            for name in changed:
                setattr(row, name, values[name])
            row.save()
        if groups_changed:
            row.access_groups.set([groups[g] for g in item.access_groups])
        (report.updated if changed or groups_changed else report.unchanged).append(label)
    for key, row in existing.items():
        if key not in wanted:
            report.deleted.append(f"{row.model_name} ({key})")
            row.delete()
    AccessGroup.objects.filter(from_config=True, deployments__isnull=True).delete()
    return report


def _ensure_groups(names: set[str]) -> dict[str, AccessGroup]:
    found = {g.name: g for g in AccessGroup.objects.filter(name__in=names)}
    for name in sorted(names - set(found)):
        found[name] = AccessGroup.objects.create(name=name, from_config=True)
    return found


def load_config(path: str | os.PathLike) -> LoadReport:
    return apply_config(read_config(path))
