"""Admin forms for keys and teams. Validation lives here, so the admin shows an error next to its field; the rules
themselves stay in `accounts.services` (validate_key_models) and `accounts.access`, never copied.

The grant-list picker offers the real choices of the current route table: exact model names, wildcard routes,
access groups and the special values of SPEC §1, plus a text box for anything else (a pattern such as
`openai/gpt-4*`, or a name that is not configured yet).
"""

from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.utils import timezone
from django.utils.html import format_html

from accounts import services
from accounts.access import ALL_PROXY_MODELS, ALL_TEAM_MODELS
from accounts.durations import DURATION_HELP, add_duration, is_duration
from accounts.models import Team, VirtualKey
from gateway.errors import InvalidRequestError
from models_registry.registry import current_routes
from models_registry.routing import RouteTable

KEY_SPECIALS = (
    (ALL_TEAM_MODELS, f"{ALL_TEAM_MODELS}: whatever the key's team may use"),
    (ALL_PROXY_MODELS, f"{ALL_PROXY_MODELS}: every model on the gateway"),
)
TEAM_SPECIALS = ((ALL_PROXY_MODELS, f"{ALL_PROXY_MODELS}: every model on the gateway"),)


def grant_choices(routes: RouteTable, *, for_key: bool) -> list[tuple[str, list[tuple[str, str]]]]:
    """The picker's choices, grouped: specials, access groups (with the routes they grant), models, wildcards."""
    groups = []
    for name in sorted(routes.access_groups):
        members = [r.model_name for r in routes.routes if name in r.access_groups]
        groups.append((name, f"{name}  ({', '.join(members)})"))
    exact = [(r.model_name, r.model_name) for r in routes.routes if not r.is_wildcard]
    wildcards = [(r.model_name, f"{r.model_name}  (wildcard route)") for r in routes.routes if r.is_wildcard]
    choices = [("Special values", list(KEY_SPECIALS if for_key else TEAM_SPECIALS))]
    for title, options in (("Access groups", groups), ("Models", exact), ("Wildcard routes", wildcards)):
        if options:
            choices.append((title, options))
    return choices


def _split_entries(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class GrantListWidget(forms.MultiWidget):
    """Checkboxes for the known entries, a text box for the rest; the value is one list."""

    def __init__(self, attrs=None):
        widgets = (
            forms.CheckboxSelectMultiple(attrs={"class": "mg-grant-list"}),
            forms.TextInput(
                attrs={"class": "vTextField mg-grant-other", "placeholder": "Other entries, comma-separated"}
            ),
        )
        super().__init__(widgets, attrs)

    @property
    def known(self) -> set[str]:
        return {value for _, options in self.widgets[0].choices for value, _ in options}

    def decompress(self, value):
        entries = list(value or [])
        known = self.known
        return [[e for e in entries if e in known], ", ".join(e for e in entries if e not in known)]

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        return format_html('<div class="mg-grant-widget">{}</div>', html)

    def get_context(self, name, value, attrs):
        # A grant list (a list of names) is one value here, not one value per sub-widget as MultiWidget assumes.
        if not _is_widget_value(value):
            value = self.decompress(value)
        return super().get_context(name, value, attrs)


def _is_widget_value(value) -> bool:
    """[checked entries, "other, entries"], as the widget posts them (vs. a plain grant list)."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and isinstance(value[0], list | tuple)
        and isinstance(value[1], str | None)
    )


class GrantListField(forms.Field):
    """A key's or team's `models` list, edited with GrantListWidget."""

    widget = GrantListWidget

    def __init__(self, *, for_key: bool, **kwargs):
        self.for_key = for_key
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def set_routes(self, routes: RouteTable) -> None:
        self.widget.widgets[0].choices = grant_choices(routes, for_key=self.for_key)

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        if _is_widget_value(value):
            picked, other = value
            entries = [*(picked or []), *_split_entries(other or "")]
        else:
            entries = list(value)
        if any(not isinstance(e, str) or any(c.isspace() for c in e) for e in entries):
            raise forms.ValidationError("Model names, patterns and group names cannot contain spaces.")
        return list(dict.fromkeys(entries))

    def has_changed(self, initial, data) -> bool:
        return list(initial or []) != self.to_python(data)


def _clean_duration(value: str | None, field: str) -> str | None:
    if not value:
        return None
    try:
        fits = is_duration(value) and add_duration(timezone.now(), value) is not None
    except (ValueError, OverflowError):
        fits = False
    if not fits:
        raise forms.ValidationError(f"'{field}' must be {DURATION_HELP}.")
    return value.strip()


def _clean_budget(value: float | None) -> float | None:
    if value is not None and value < 0:
        raise forms.ValidationError("A budget cannot be negative (0 allows nothing priced).")
    return value


class _GrantListForm(forms.ModelForm):
    """Fills the grant-list picker from the route table the relay uses right now."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.routes = current_routes()
        self.fields["models"].set_routes(self.routes)

    def clean_max_budget(self):
        return _clean_budget(self.cleaned_data.get("max_budget"))

    def clean_budget_duration(self):
        return _clean_duration(self.cleaned_data.get("budget_duration"), "budget_duration")


KEY_MODELS_HELP = (
    "What this key may call. Empty: no restriction at the key layer (its team's list still applies). A key of a "
    "team may only list what the team allows; 'all-team-models' follows the team."
)


class VirtualKeyForm(_GrantListForm):
    """Editing a key: its grant list must be one its team would allow (services.validate_key_models)."""

    models = GrantListField(for_key=True, label="Allowed models", help_text=KEY_MODELS_HELP)

    class Meta:
        model = VirtualKey
        fields = (
            "key_alias",
            "team",
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
        help_texts = {
            "key_alias": "A unique name for people: 'ci-bot', 'alice-laptop'.",
            "max_budget": "USD. Requests are refused once spend reaches it (SPEC §5). Empty: no budget.",
            "budget_duration": f"Spend resets to 0 every period: {DURATION_HELP}. Empty: never.",
            "expires": "Empty: never expires.",
            "blocked": "A blocked key gets 401 blocked_key on every call.",
        }

    def clean(self):
        cleaned = super().clean()
        if "models" in cleaned and "team" not in self.errors:
            try:
                services.validate_key_models(cleaned["models"], cleaned.get("team"))
            except InvalidRequestError as exc:
                self.add_error("models", exc.message)
        return cleaned


class VirtualKeyAddForm(VirtualKeyForm):
    """Adding a key: the secret is generated by services.key_generate; `duration` sets the expiry from now."""

    duration = forms.CharField(
        required=False,
        max_length=20,
        label="Expires after",
        help_text=f"{DURATION_HELP[0].upper()}{DURATION_HELP[1:]}, counted from now. Empty: never expires.",
    )

    class Meta(VirtualKeyForm.Meta):
        fields = tuple(f for f in VirtualKeyForm.Meta.fields if f != "expires")

    def clean_duration(self):
        return _clean_duration(self.cleaned_data.get("duration"), "duration")


TEAM_MODELS_HELP = (
    "What keys of this team may call (the team layer). Empty: no restriction. Keys of the team may list only "
    "entries this list allows."
)


class TeamForm(_GrantListForm):
    models = GrantListField(for_key=False, label="Allowed models", help_text=TEAM_MODELS_HELP)

    class Meta:
        model = Team
        fields = (
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
        help_texts = {
            "team_alias": "A unique name for people: 'ml-research', 'support-bots'.",
            "max_budget": "USD, shared by the team's keys. Requests are refused once spend reaches it.",
            "budget_duration": f"Spend resets to 0 every period: {DURATION_HELP}. Empty: never.",
            "blocked": "Every key of a blocked team gets 401 blocked_team.",
        }

    def clean_models(self) -> list[str]:
        models = self.cleaned_data.get("models") or []
        if ALL_TEAM_MODELS in models:
            raise forms.ValidationError(f"'{ALL_TEAM_MODELS}' is for keys; a team lists its models directly.")
        return models


class TeamAddForm(TeamForm):
    team_id = forms.CharField(
        required=False,
        max_length=128,
        label="Team ID",
        help_text="Empty: a new UUID. Clients and scripts use it in /key/generate's team_id.",
    )  # not a model field of this form: services.team_create sets it

    def clean_team_id(self):
        value = (self.cleaned_data.get("team_id") or "").strip()
        if value and Team.objects.filter(team_id=value).exists():
            raise forms.ValidationError(f"team_id '{value}' already exists; pick another or leave it empty.")
        return value or None


def keys_outside_team(team: Team, keys: Sequence[VirtualKey]) -> list[tuple[VirtualKey, str]]:
    """Keys whose grant list the team no longer allows (after an edit), each with the reason."""
    found = []
    for key in keys:
        try:
            services.validate_key_models(key.models, team)
        except InvalidRequestError as exc:
            found.append((key, exc.message))
    return found
