"""The operator console for deployments and access groups.

A provider key is never displayed: `os.environ/NAME` is shown as the variable it names (and whether this process has
it set), a literal key only in masked form. "Who can reach this route?" asks `accounts.access.may_use` with each
key's snapshot, exactly as the relay does.
"""

from __future__ import annotations

import os

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.access import KeyGrant, may_use
from accounts.admin import badge, chips, key_status
from accounts.auth import grant_for
from accounts.models import Team, VirtualKey
from models_registry.api import ENV_PREFIX, masked_secret
from models_registry.models import AccessGroup, Deployment
from models_registry.registry import current_routes

NEEDS_NO_KEY = frozenset({"mock", "hosted_vllm", "vllm", "ollama", "ollama_chat", "lm_studio", "llamafile"})
CONFIG_WARNING = (
    "This deployment comes from the config file. The next config load (modelgate serve or load-config) "
    "overwrites any edit made here; change the config file instead."
)


def env_status(value: str) -> tuple[str, str]:
    """(state, text) for a value that may be `os.environ/NAME`: ok / missing / literal / empty. Never the secret."""
    if not value:
        return "empty", ""
    if value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        return ("ok", f"{value} (set)") if os.environ.get(name) is not None else ("missing", f"{value} (not set)")
    return "literal", masked_secret(value) or ""


def provider_key_html(row: Deployment) -> str:
    state, text = env_status(row.api_key)
    if state == "empty":
        if row.provider in NEEDS_NO_KEY:
            return format_html('<span class="mg-quiet">{}</span>', "not needed")
        return format_html('<span class="mg-warn">{}</span>', "no key")
    if state == "literal":
        return format_html('<span class="mg-ok">✔</span> <code>{}</code> <span class="mg-quiet">stored</span>', text)
    mark = '<span class="mg-ok">✔</span>' if state == "ok" else '<span class="mg-bad">✘</span>'
    return format_html('{} <code>{}</code> <span class="{}">{}</span>', mark_safe(mark), row.api_key,
                       "mg-quiet" if state == "ok" else "mg-bad", "set" if state == "ok" else "not set")  # fmt: skip


def group_users(name: str) -> tuple[list[VirtualKey], list[Team]]:
    """Keys and teams whose grant list names this access group."""
    keys = [
        k for k in VirtualKey.objects.select_related("team").order_by("key_alias", "pk") if name in (k.models or [])
    ]
    teams = [t for t in Team.objects.order_by("team_alias", "pk") if name in (t.models or [])]
    return keys, teams


def route_reach(model_name: str) -> dict | None:
    """Which keys and teams the grant lists let through to this route (accounts.access.may_use, per key)."""
    route = current_routes().get(model_name)
    if route is None:
        return None
    keys = []
    for row in VirtualKey.objects.select_related("team").order_by("key_alias", "pk"):
        if may_use(grant_for(row), route.model_name, route):
            keys.append((row, *key_status(row)))
    teams = []
    for team in Team.objects.order_by("team_alias", "pk"):
        grant = KeyGrant(key_hash="", key_preview="", team_id=team.team_id, team_models=tuple(team.models or ()))
        if may_use(grant, route.model_name, route):
            teams.append(team)
    return {
        "route": route,
        "keys": keys,
        "active_keys": sum(1 for _, slug, _ in keys if slug == "active"),
        "teams": teams,
        "shared_with": len(route.deployments) - 1,
    }


def has_literal_key(row: Deployment | None) -> bool:
    """A provider key stored in the database (not os.environ/NAME): the admin never renders it back."""
    return bool(row is not None and row.pk and row.api_key and not row.api_key.startswith(ENV_PREFIX))


class DeploymentForm(forms.ModelForm):
    """The provider key is write-only here: a stored literal key is never put back into the page."""

    api_key = forms.CharField(
        required=False,
        max_length=500,
        label="API key",
        widget=forms.TextInput(attrs={"class": "vTextField", "autocomplete": "off", "spellcheck": "false"}),
        help_text="Prefer os.environ/NAME: the key is then read from the environment at call time, never stored.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")

    class Meta:
        model = Deployment
        fields = (
            "model_name",
            "litellm_model",
            "api_base",
            "api_key",
            "api_version",
            "access_groups",
            "timeout",
            "weight",
            "rpm",
            "tpm",
            "input_cost_per_token",
            "output_cost_per_token",
            "mock_response",
            "model_info",
            "position",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stored_key = self.instance.api_key if self.instance.pk else ""
        if has_literal_key(self.instance):
            self.initial["api_key"] = ""
            self.fields["api_key"].widget.attrs["placeholder"] = (
                f"{masked_secret(self.stored_key)} is stored; type a new key or os.environ/NAME to replace it"
            )
        else:
            del self.fields["clear_api_key"]

    def clean(self):
        cleaned = super().clean()
        typed = (cleaned.get("api_key") or "").strip()
        if cleaned.get("clear_api_key"):
            cleaned["api_key"] = ""
        elif not typed and has_literal_key(self.instance):
            cleaned["api_key"] = self.stored_key  # left empty: keep the stored key
        else:
            cleaned["api_key"] = typed
        return cleaned


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    form = DeploymentForm
    list_display = (
        "model_name",
        "provider_name",
        "litellm_model",
        "api_base_display",
        "groups",
        "source_badge",
        "provider_key",
    )
    list_filter = ("source", "access_groups")
    search_fields = ("model_name", "litellm_model", "api_base")
    autocomplete_fields = ("access_groups",)
    readonly_fields = ("source", "config_key", "provider_key", "created_at", "updated_at")
    change_form_template = "admin/models_registry/deployment/change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "model_name",
                    "litellm_model",
                    "api_base",
                    "api_key",
                    "clear_api_key",
                    "provider_key",
                    "api_version",
                )
            },
        ),  # fmt: skip
        ("Access", {"fields": ("access_groups",)}),
        (
            "Limits and prices",
            {"fields": ("timeout", "weight", "rpm", "tpm", "input_cost_per_token", "output_cost_per_token")},
        ),  # fmt: skip
        ("Answering locally", {"fields": ("mock_response",), "classes": ("collapse",)}),
        ("Record", {"fields": ("source", "config_key", "position", "model_info", "created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("access_groups")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if has_literal_key(obj):
            return fieldsets
        first = dict(fieldsets[0][1])
        first["fields"] = tuple(f for f in first["fields"] if f != "clear_api_key")
        return ((fieldsets[0][0], first), *fieldsets[1:])

    @admin.display(description="provider")
    def provider_name(self, row: Deployment) -> str:
        return row.provider

    @admin.display(description="api_base", ordering="api_base")
    def api_base_display(self, row: Deployment) -> str:
        state, text = env_status(row.api_base)
        if state == "empty":
            return format_html('<span class="mg-quiet">{}</span>', "provider default")
        if state == "missing":
            return format_html('<code>{}</code> <span class="mg-bad">not set</span>', row.api_base)
        return format_html("<code>{}</code>", row.api_base)

    @admin.display(description="access groups")
    def groups(self, row: Deployment) -> str:
        groups = list(row.access_groups.all())
        if not groups:
            return format_html('<span class="mg-quiet">{}</span>', "—")
        return format_html_join(
            " ",
            '<a class="mg-chip mg-chip-group" href="{}">{}</a>',
            ((reverse("admin:models_registry_accessgroup_change", args=[g.pk]), g.name) for g in groups),
        )

    @admin.display(description="source", ordering="source")
    def source_badge(self, row: Deployment) -> str:
        if row.source == Deployment.SOURCE_CONFIG:
            return badge("config", "config file")
        return badge("admin", "admin")

    @admin.display(description="provider key")
    def provider_key(self, row: Deployment) -> str:
        return provider_key_html(row)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        row = self.get_object(request, unquote(object_id))
        if row is not None:
            extra_context["reach"] = route_reach(row.model_name)
            extra_context["config_warning"] = CONFIG_WARNING if row.source == Deployment.SOURCE_CONFIG else ""
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(AccessGroup)
class AccessGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "member_routes", "listed_by", "origin")
    search_fields = ("name",)
    list_filter = ("from_config",)
    readonly_fields = ("from_config", "created_at")
    fields = ("name", "description", "from_config", "created_at")
    change_form_template = "admin/models_registry/accessgroup/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(deployment_total=Count("deployments"))

    @admin.display(description="routes it grants")
    def member_routes(self, group: AccessGroup) -> str:
        names = list(dict.fromkeys(d.model_name for d in group.deployments.order_by("position", "id")))
        return chips(names, empty="no deployment carries it")

    @admin.display(description="listed by")
    def listed_by(self, group: AccessGroup) -> str:
        keys, teams = group_users(group.name)
        return f"{len(keys)} key(s), {len(teams)} team(s)"

    @admin.display(description="source", ordering="from_config")
    def origin(self, group: AccessGroup) -> str:
        return badge("config", "config file") if group.from_config else badge("admin", "admin")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        group = self.get_object(request, unquote(object_id))
        if group is not None:
            keys, teams = group_users(group.name)
            extra_context.update(
                group_deployments=list(group.deployments.order_by("position", "id")),
                group_keys=[(k, *key_status(k)) for k in keys],
                group_teams=teams,
            )
        return super().change_view(request, object_id, form_url, extra_context)
