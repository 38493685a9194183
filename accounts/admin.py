"""The operator console for virtual keys and teams.

Every write goes through `accounts.services` (key_generate, key_update, key_set_blocked, key_regenerate, keys_delete,
team_create, team_update, teams_delete); every "who may call what" answer comes from `accounts.access` with the
snapshot `accounts.auth.grant_for` builds and the route table the relay uses, so the console and the relay cannot
disagree. A key's plaintext is rendered once, in the response to the request that made it, and never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from accounts import services
from accounts.access import (
    ALL_TEAM_MODELS,
    KeyGrant,
    callable_models,
    callable_patterns,
    check_key_status,
    may_use,
    resolve_allowed,
)
from accounts.auth import grant_for
from accounts.forms import TeamAddForm, TeamForm, VirtualKeyAddForm, VirtualKeyForm, keys_outside_team
from accounts.models import Team, VirtualKey
from gateway.errors import GatewayError, InvalidRequestError
from models_registry.registry import current_routes
from models_registry.routing import RouteTable

# --- small renderers shared by the key, team, deployment and access-group pages ------------------------------------


def money(value: float | None) -> str:
    if value is None:
        return "—"
    if 0 < abs(value) < 1:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def spend_budget(spend: float, max_budget: float | None) -> str:
    """`$1.20 / $10.00` with a small gauge; over budget shows red (SPEC §5: refused once spend >= budget)."""
    if max_budget is None:
        return format_html('<span class="mg-spend">{}</span> <span class="mg-quiet">/ no budget</span>', money(spend))
    share = 1.0 if max_budget <= 0 else min(spend / max_budget, 1.0)
    level = "over" if spend >= max_budget else ("high" if share >= 0.8 else "ok")
    return format_html(
        '<span class="mg-spend">{}</span> / {}<span class="mg-gauge mg-gauge-{}" title="{}% used">'
        '<span style="width: {}%"></span></span>',
        money(spend),
        money(max_budget),
        level,
        round(share * 100),
        round(share * 100),
    )


def chips(entries, *, empty: str = "any model", link=None) -> str:
    if not entries:
        return format_html('<span class="mg-quiet">{}</span>', empty)
    if link is None:
        return format_html_join(" ", '<span class="mg-chip">{}</span>', ((e,) for e in entries))
    return format_html_join(" ", '<a class="mg-chip" href="{}">{}</a>', ((link(e), e) for e in entries))


def badge(slug: str, label: str) -> str:
    return format_html('<span class="mg-badge mg-badge-{}">{}</span>', slug, label)


def ago(moment: datetime | None, *, never: str = "never") -> str:
    if moment is None:
        return format_html('<span class="mg-quiet">{}</span>', never)
    return format_html('<span title="{}">{} ago</span>', moment.isoformat(timespec="seconds"), timesince(moment))


def key_status(row: VirtualKey, now: datetime | None = None) -> tuple[str, str]:
    """(slug, label) in the relay's order of checks: key blocked, team blocked, expired (SPEC §3)."""
    now = now or timezone.now()
    if row.blocked:
        return "blocked", "blocked"
    if row.team is not None and row.team.blocked:
        return "team-blocked", "team blocked"
    if row.expires is not None and row.expires <= now:
        return "expired", "expired"
    return "active", "active"


def key_change_url(row: VirtualKey) -> str:
    return reverse("admin:accounts_virtualkey_change", args=[row.pk])


def team_change_url(team: Team) -> str:
    return reverse("admin:accounts_team_change", args=[team.pk])


def no_store(response: HttpResponse) -> HttpResponse:
    """Pages that show a key's plaintext: never cached by the browser or a proxy."""
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
    return response


# --- "who can call this?" -------------------------------------------------------------------------------------------
@dataclass
class TryResult:
    """What the relay would answer for one model name, up to the route (budgets and rate limits come after)."""

    model: str
    allowed: bool
    status: int = 200
    type: str = ""
    code: str = ""
    message: str = ""
    route: str = ""
    deployments: list[str] = field(default_factory=list)


def try_model(grant: KeyGrant, requested: str, routes: RouteTable, now: datetime) -> TryResult:
    """The relay's checks for `requested`, in its order (SPEC §3): key status, access, route."""
    try:
        check_key_status(grant, now)
        match = resolve_allowed(grant, requested, routes)
    except GatewayError as exc:
        return TryResult(
            model=requested, allowed=False, status=exc.status, type=exc.type, code=exc.code, message=exc.message
        )
    return TryResult(
        model=requested,
        allowed=True,
        route=match.route.model_name,
        deployments=[f"{d.provider} · {d.upstream_model(match.captures)}" for d in match.route.deployments],
    )


def grant_summary(grant: KeyGrant, routes: RouteTable) -> dict:
    return {"models": callable_models(grant, routes), "patterns": callable_patterns(grant, routes)}


# --- filters --------------------------------------------------------------------------------------------------------
class KeyStatusFilter(admin.SimpleListFilter):
    """The status column's values; each key is counted once, under the first check the relay would fail."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return (("active", "active"), ("blocked", "blocked"), ("team-blocked", "team blocked"), ("expired", "expired"))

    def queryset(self, request, queryset):
        now = timezone.now()
        not_expired = Q(expires__isnull=True) | Q(expires__gt=now)
        team_ok = Q(team__isnull=True) | Q(team__blocked=False)
        value = self.value()
        if value == "active":
            return queryset.filter(not_expired, team_ok, blocked=False)
        if value == "blocked":
            return queryset.filter(blocked=True)
        if value == "team-blocked":
            return queryset.filter(blocked=False, team__blocked=True)
        if value == "expired":
            return queryset.filter(team_ok, blocked=False, expires__lte=now)
        return queryset


class CanCallModelFilter(admin.SimpleListFilter):
    """Keys whose grant lists (key layer and team layer) allow a route: accounts.access.may_use, per key."""

    title = "grant allows model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return [(r.model_name, r.model_name) for r in current_routes().routes]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        route = current_routes().get(self.value())
        if route is None:
            return queryset.none()
        allowed = [
            row.pk for row in queryset.select_related("team") if may_use(grant_for(row), route.model_name, route)
        ]
        return queryset.filter(pk__in=allowed)


# --- virtual keys ---------------------------------------------------------------------------------------------------
KEY_ADD_FIELDSETS = (
    (None, {"fields": ("key_alias", "team", "models")}),
    (
        "Budget and limits",
        {"fields": ("max_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests")},
    ),
    ("Expiry and status", {"fields": ("duration", "blocked")}),
    ("Metadata", {"fields": ("metadata",), "classes": ("collapse",)}),
)
KEY_CHANGE_FIELDSETS = (
    (None, {"fields": ("key_alias", "key_preview", "team", "models")}),
    (
        "Budget and limits",
        {
            "fields": (
                "spend_and_budget",
                "max_budget",
                "budget_duration",
                "budget_reset_at",
                "rpm_limit",
                "tpm_limit",
                "max_parallel_requests",
            )
        },
    ),
    ("Expiry and status", {"fields": ("status", "blocked", "expires", "last_used")}),
    ("Record", {"fields": ("metadata", "key_hash", "created_at", "updated_at"), "classes": ("collapse",)}),
)
KEY_SERVICE_FIELDS = (
    "key_alias",
    "models",
    "max_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "blocked",
    "expires",
    "metadata",
)


@admin.register(VirtualKey)
class VirtualKeyAdmin(admin.ModelAdmin):
    form = VirtualKeyForm
    add_form = VirtualKeyAddForm
    list_display = (
        "name",
        "key_preview",
        "team_link",
        "allowed_models",
        "spend_and_budget",
        "expiry",
        "status",
        "last_used",
    )
    list_select_related = ("team",)
    list_filter = ("team", KeyStatusFilter, CanCallModelFilter)
    search_fields = ("key_alias", "key_preview")
    autocomplete_fields = ("team",)
    actions = ("block_keys", "unblock_keys", "regenerate_keys", "delete_selected")
    list_per_page = 50
    change_form_template = "admin/accounts/virtualkey/change_form.html"

    # --- columns ---
    @admin.display(description="key", ordering="key_alias")
    def name(self, row: VirtualKey) -> str:
        return row.key_alias or format_html('<span class="mg-quiet">(no alias) {}</span>', row.key_preview)

    @admin.display(description="team", ordering="team__team_alias")
    def team_link(self, row: VirtualKey) -> str:
        if row.team is None:
            return format_html('<span class="mg-quiet">{}</span>', "—")
        return format_html('<a href="{}">{}</a>', team_change_url(row.team), row.team)

    @admin.display(description="allowed models")
    def allowed_models(self, row: VirtualKey) -> str:
        return chips(row.models, empty="team's models" if row.team_id else "any model")

    @admin.display(description="spend / budget", ordering="spend")
    def spend_and_budget(self, row: VirtualKey) -> str:
        return spend_budget(row.spend, row.max_budget)

    @admin.display(description="expires", ordering="expires")
    def expiry(self, row: VirtualKey) -> str:
        if row.expires is None:
            return format_html('<span class="mg-quiet">{}</span>', "never")
        past = row.expires <= timezone.now()
        return format_html(
            '<span class="{}" title="{}">{}</span>',
            "mg-bad" if past else "",
            row.expires.isoformat(timespec="seconds"),
            row.expires.strftime("%Y-%m-%d %H:%M"),
        )

    @admin.display(description="status")
    def status(self, row: VirtualKey) -> str:
        return badge(*key_status(row))

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, row: VirtualKey) -> str:
        return ago(row.last_used_at)

    # --- forms ---
    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        return KEY_CHANGE_FIELDSETS if obj is not None else KEY_ADD_FIELDSETS

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "key_preview",
            "key_hash",
            "spend_and_budget",
            "budget_reset_at",
            "status",
            "last_used",
            "created_at",
            "updated_at",
        )

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if "models" in initial and isinstance(initial["models"], str):
            initial["models"] = [m for m in initial["models"].split(",") if m]
        return initial

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            row, plaintext = services.key_generate(
                models=data["models"],
                team_id=data["team"].pk if data.get("team") else None,
                key_alias=data.get("key_alias"),
                max_budget=data.get("max_budget"),
                budget_duration=data.get("budget_duration"),
                duration=data.get("duration"),
                metadata=data.get("metadata") or {},
                rpm_limit=data.get("rpm_limit"),
                tpm_limit=data.get("tpm_limit"),
                max_parallel_requests=data.get("max_parallel_requests"),
                blocked=bool(data.get("blocked")),
            )
            obj.__dict__.update({f.attname: getattr(row, f.attname) for f in VirtualKey._meta.concrete_fields})
            obj._state.adding = False
            obj._new_plaintext = plaintext  # rendered once by response_add, never stored
            return
        # key_update compares with the stored row (e.g. a new budget_duration starts a new period), so hand it one
        # fresh from the database, with only the fields the operator changed.
        row = VirtualKey.objects.select_related("team").get(pk=obj.pk)
        changes = {name: data[name] for name in form.changed_data if name in KEY_SERVICE_FIELDS}
        if "team" in form.changed_data:
            changes["team_id"] = data["team"].pk if data.get("team") else None
        if changes:
            services.key_update(row, **changes)

    def response_add(self, request, obj, post_url_continue=None):
        plaintext = getattr(obj, "_new_plaintext", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        return self._secret_page(request, [(obj, plaintext)], regenerated=False)

    def _secret_page(self, request, items, *, regenerated: bool) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "New secret" if regenerated else "Key created",
            "items": items,
            "regenerated": regenerated,
        }
        response = TemplateResponse(request, "admin/accounts/virtualkey/key_secret.html", context)
        return no_store(response.render())

    # --- delete through the service ---
    def delete_model(self, request, obj):
        services.keys_delete([obj])

    def delete_queryset(self, request, queryset):
        services.keys_delete(list(queryset))

    # --- actions ---
    @admin.action(description="Block selected keys", permissions=["change"])
    def block_keys(self, request, queryset):
        rows = list(queryset)
        for row in rows:
            services.key_set_blocked(row, True)
        self.message_user(
            request, f"Blocked {len(rows)} key(s): every call with them now answers 401 blocked_key.", messages.SUCCESS
        )

    @admin.action(description="Unblock selected keys", permissions=["change"])
    def unblock_keys(self, request, queryset):
        rows = list(queryset)
        for row in rows:
            services.key_set_blocked(row, False)
        self.message_user(request, f"Unblocked {len(rows)} key(s).", messages.SUCCESS)

    @admin.action(description="Regenerate secrets of selected keys", permissions=["change"])
    def regenerate_keys(self, request, queryset):
        rows = list(queryset.select_related("team"))
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Regenerate secrets?",
                "rows": rows,
                "action": "regenerate_keys",
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/accounts/virtualkey/regenerate_confirmation.html", context)
        items = []
        for row in rows:
            row, plaintext = services.key_regenerate(row)
            self.log_change(request, row, "Regenerated the secret.")
            items.append((row, plaintext))
        return self._secret_page(request, items, regenerated=True)

    # --- extra views: regenerate one key; "who can call" and "try it" on the change page ---
    def get_urls(self):
        urls = super().get_urls()
        extra = [
            path(
                "<path:object_id>/regenerate/",
                self.admin_site.admin_view(self.regenerate_view),
                name="accounts_virtualkey_regenerate",
            )
        ]
        return extra + urls

    def regenerate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        row = self.get_object(request, unquote(object_id))
        if row is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, row):
            raise PermissionDenied
        if request.method == "POST":
            row, plaintext = services.key_regenerate(row)
            self.log_change(request, row, "Regenerated the secret.")
            return self._secret_page(request, [(row, plaintext)], regenerated=True)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Regenerate secret?",
            "rows": [row],
            "original": row,
        }
        return TemplateResponse(request, "admin/accounts/virtualkey/regenerate_confirmation.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        row = self.get_object(request, unquote(object_id))
        if row is not None:
            extra_context.update(self.access_context(row, request.GET.get("try_model", "")))
        return super().change_view(request, object_id, form_url, extra_context)

    def access_context(self, row: VirtualKey, requested: str) -> dict:
        routes = current_routes()
        now = timezone.now()
        grant = grant_for(row)
        summary = grant_summary(grant, routes)
        try:
            check_key_status(grant, now)
            status_error = None
        except GatewayError as exc:
            status_error = exc
        context = {
            "who_can_call": summary,
            "status_error": status_error,
            "defers_to_team": ALL_TEAM_MODELS in row.models,
            "key_team": row.team,
            "try_model_value": requested,
        }
        if requested:
            context["try_result"] = try_model(grant, requested.strip(), routes, now)
        return context


# --- teams ----------------------------------------------------------------------------------------------------------
class TeamKeyInline(admin.TabularInline):
    """The team's keys, read-only, each linking to its own page."""

    model = VirtualKey
    verbose_name_plural = "keys of this team"
    fields = ("key_link", "key_preview", "allowed_models", "spend_and_budget", "status", "last_used")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="key")
    def key_link(self, row: VirtualKey) -> str:
        return format_html('<a href="{}">{}</a>', key_change_url(row), row.key_alias or row.key_preview)

    @admin.display(description="allowed models")
    def allowed_models(self, row: VirtualKey) -> str:
        return chips(row.models, empty="team's models")

    @admin.display(description="spend / budget")
    def spend_and_budget(self, row: VirtualKey) -> str:
        return spend_budget(row.spend, row.max_budget)

    @admin.display(description="status")
    def status(self, row: VirtualKey) -> str:
        return badge(*key_status(row))

    @admin.display(description="last used")
    def last_used(self, row: VirtualKey) -> str:
        return ago(row.last_used_at)


TEAM_SERVICE_FIELDS = (
    "team_alias",
    "models",
    "max_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "blocked",
    "metadata",
)
TEAM_ADD_FIELDSETS = (
    (None, {"fields": ("team_alias", "team_id", "models")}),
    (
        "Budget and limits",
        {"fields": ("max_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests")},
    ),
    ("Status", {"fields": ("blocked",)}),
    ("Metadata", {"fields": ("metadata",), "classes": ("collapse",)}),
)
TEAM_CHANGE_FIELDSETS = (
    (None, {"fields": ("team_alias", "team_id", "models")}),
    (
        "Budget and limits",
        {
            "fields": (
                "spend_and_budget",
                "max_budget",
                "budget_duration",
                "budget_reset_at",
                "rpm_limit",
                "tpm_limit",
                "max_parallel_requests",
            )
        },
    ),
    ("Status", {"fields": ("blocked",)}),
    ("Record", {"fields": ("metadata", "created_at", "updated_at"), "classes": ("collapse",)}),
)
DELETE_RULE = (
    "A team that still has keys cannot be deleted on its own (SPEC §4: /team/delete refuses it). Either delete or "
    "move its keys first, or delete the keys together with the team: they stop working at once and cannot be "
    "restored."
)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    form = TeamForm
    add_form = TeamAddForm
    list_display = ("name", "short_id", "allowed_models", "key_count", "spend_and_budget", "status")
    list_filter = ("blocked",)
    search_fields = ("team_alias", "team_id")
    actions = ("delete_selected", "delete_with_keys")
    inlines = (TeamKeyInline,)
    change_form_template = "admin/accounts/team/change_form.html"
    delete_confirmation_template = "admin/accounts/team/delete_confirmation.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(key_total=Count("keys"))

    # --- columns ---
    @admin.display(description="team", ordering="team_alias")
    def name(self, team: Team) -> str:
        return team.team_alias or team.team_id

    @admin.display(description="team ID", ordering="team_id")
    def short_id(self, team: Team) -> str:
        return format_html('<code title="{}">{}</code>', team.team_id, team.team_id[:13])

    @admin.display(description="allowed models")
    def allowed_models(self, team: Team) -> str:
        return chips(team.models)

    @admin.display(description="keys", ordering="key_total")
    def key_count(self, team: Team) -> str:
        total = getattr(team, "key_total", None)
        if total is None:
            total = team.keys.count()
        url = reverse("admin:accounts_virtualkey_changelist") + f"?team__team_id__exact={team.team_id}"
        return format_html('<a href="{}">{}</a>', url, total)

    @admin.display(description="spend / budget", ordering="spend")
    def spend_and_budget(self, team: Team) -> str:
        return spend_budget(team.spend, team.max_budget)

    @admin.display(description="status", ordering="blocked")
    def status(self, team: Team) -> str:
        return badge("blocked", "blocked") if team.blocked else badge("active", "active")

    # --- forms ---
    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        return TEAM_CHANGE_FIELDSETS if obj is not None else TEAM_ADD_FIELDSETS

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("team_id", "spend_and_budget", "budget_reset_at", "created_at", "updated_at")

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            team = services.team_create(
                team_id=data.get("team_id"),
                team_alias=data.get("team_alias"),
                models=data["models"],
                max_budget=data.get("max_budget"),
                budget_duration=data.get("budget_duration"),
                rpm_limit=data.get("rpm_limit"),
                tpm_limit=data.get("tpm_limit"),
                max_parallel_requests=data.get("max_parallel_requests"),
                blocked=bool(data.get("blocked")),
                metadata=data.get("metadata") or {},
            )
            obj.__dict__.update({f.attname: getattr(team, f.attname) for f in Team._meta.concrete_fields})
            obj._state.adding = False
            return
        team = Team.objects.get(pk=obj.pk)
        changes = {name: data[name] for name in form.changed_data if name in TEAM_SERVICE_FIELDS}
        if changes:
            services.team_update(team, **changes)
        if "models" in changes:
            for key, reason in keys_outside_team(team, list(team.keys.all())):
                messages.warning(
                    request,
                    format_html(
                        'Key <a href="{}">{}</a> lists a model this team no longer allows; its calls to it will be '
                        "denied at the team layer. {}",
                        key_change_url(key),
                        key,
                        reason,
                    ),
                )

    # --- "what may its keys call" and the add-key shortcut on the change page ---
    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        team = self.get_object(request, unquote(object_id))
        if team is not None:
            grant = KeyGrant(key_hash="", key_preview="", team_id=team.team_id, team_models=tuple(team.models))
            extra_context["team_can_call"] = grant_summary(grant, current_routes())
            extra_context["add_key_url"] = reverse("admin:accounts_virtualkey_add") + f"?team={team.pk}"
        return super().change_view(request, object_id, form_url, extra_context)

    # --- deleting: SPEC §4, through services.teams_delete ---
    def delete_model(self, request, obj):
        services.teams_delete([obj])

    def delete_queryset(self, request, queryset):
        services.teams_delete(list(queryset))

    def delete_view(self, request, object_id, extra_context=None):
        team = self.get_object(request, unquote(object_id))
        if team is not None and request.method == "POST" and request.POST.get("delete_keys") == "yes":
            if not self.has_delete_permission(request, team):
                raise PermissionDenied
            return self._delete_with_keys(request, [team])
        extra_context = dict(extra_context or {})
        if team is not None:
            extra_context["team_keys"] = list(team.keys.all())
            extra_context["delete_rule"] = DELETE_RULE
        return super().delete_view(request, object_id, extra_context)

    def _delete_with_keys(self, request, teams: list[Team]) -> HttpResponse:
        key_count = sum(team.keys.count() for team in teams)
        names = ", ".join(str(team) for team in teams)
        self.log_deletions(request, teams)
        try:
            services.teams_delete(teams, delete_keys=True)
        except InvalidRequestError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"Deleted team(s) {names} and their {key_count} key(s).", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:accounts_team_changelist"))

    @admin.action(description="Delete selected teams and their keys", permissions=["delete"])
    def delete_with_keys(self, request, queryset):
        teams = list(queryset.annotate(key_total=Count("keys")))
        if request.POST.get("confirm") == "yes":
            return self._delete_with_keys(request, teams)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Delete teams and their keys?",
            "teams": teams,
            "keys": list(VirtualKey.objects.filter(team__in=teams).select_related("team")),
            "delete_rule": DELETE_RULE,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/accounts/team/delete_with_keys_confirmation.html", context)
