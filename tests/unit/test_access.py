"""Access decisions (SPEC §3, §4): may this caller use this route? Pure: no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.access import (
    KeyGrant,
    callable_models,
    callable_patterns,
    check_access,
    check_key_status,
    layer_allows,
    team_allows_entry,
)
from gateway.errors import (
    BlockedKeyError,
    BlockedTeamError,
    ExpiredKeyError,
    ModelNotAllowedError,
    TeamModelNotAllowedError,
)
from models_registry.routing import DeploymentSpec, build_route_table

FIREWORKS = "fireworks-llama-v3-70b-instruct"
GUIDE_EXACT = ["gpt-3.5-turbo", "gpt-4", "gpt-4o", "azure-gpt-3.5", FIREWORKS, "mock-gpt"]
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def deployment(model_name: str, model: str, *groups: str) -> DeploymentSpec:
    return DeploymentSpec(id=f"{model_name}#0", model_name=model_name, model=model, access_groups=frozenset(groups))


# The models of LiteLLM's "Control Model Access" guide, in config order (as tests/conftest.py's guide_config).
GUIDE = build_route_table(
    [
        deployment("gpt-3.5-turbo", "openai/gpt-3.5-turbo"),
        deployment("gpt-4", "openai/fake", "beta-models"),
        deployment("gpt-4o", "openai/gpt-4o"),
        deployment("azure-gpt-3.5", "azure/chatgpt-v-2"),
        deployment(FIREWORKS, "fireworks_ai/accounts/fireworks/models/llama-v3-70b-instruct", "beta-models"),
        deployment("openai/*", "openai/*", "default-models"),
        deployment("openai/o1-*", "openai/o1-*", "restricted-models"),
        deployment("mock-gpt", "mock/mock-gpt"),
    ]
)


def grant(key_models=(), team_models=None, **fields) -> KeyGrant:
    """A key with `key_models`; `team_models=None` means the key has no team."""
    if team_models is not None:
        fields.setdefault("team_id", "team-1")
        fields["team_models"] = tuple(team_models)
    return KeyGrant(key_hash="0" * 64, key_preview="sk-...abcd", models=tuple(key_models), **fields)


def decide(key_grant: KeyGrant, requested: str, table=GUIDE) -> str:
    try:
        check_access(key_grant, requested, table.resolve(requested), table)
    except TeamModelNotAllowedError:
        return "team"
    except ModelNotAllowedError:
        return "key"
    return "allow"


# (key_models, team_models or None for a key without a team, requested, expected)
ACCESS_MATRIX = [
    # empty lists: no restriction at that layer
    ([], None, "gpt-4", "allow"),
    ([], None, "openai/o1-mini", "allow"),
    ([], [], "gpt-4o", "allow"),
    ([], [], "openai/gpt-4", "allow"),
    # exact names
    (["gpt-4"], None, "gpt-4", "allow"),
    (["gpt-4"], None, "gpt-4o", "key"),
    (["gpt-4"], None, "GPT-4", "key"),
    (["gpt-4"], None, "openai/fake", "key"),  # the provider model is not a way in
    ([], ["gpt-4"], "gpt-4", "allow"),
    ([], ["gpt-4"], "gpt-4o", "team"),
    (["gpt-4o"], [], "gpt-4o", "allow"),
    # patterns in grant lists match the requested name
    (["openai/*"], None, "openai/gpt-4", "allow"),
    (["openai/*"], None, "openai/o1-mini", "allow"),
    (["openai/*"], None, "gpt-4", "key"),
    (["openai/o1-*"], None, "openai/o1-mini", "allow"),
    (["openai/o1-*"], None, "openai/gpt-4", "key"),
    (["gpt-*"], None, "gpt-4o", "allow"),
    (["gpt-*"], None, "azure-gpt-3.5", "key"),  # whole name only
    ([], ["openai/*"], "openai/gpt-4o-mini", "allow"),
    ([], ["openai/*"], "gpt-4", "team"),
    # access groups
    (["beta-models"], None, "gpt-4", "allow"),
    (["beta-models"], None, FIREWORKS, "allow"),
    (["beta-models"], None, "gpt-4o", "key"),  # a list of only groups is not "empty"
    (["beta-models"], None, "openai/gpt-4", "key"),
    (["default-models"], None, "openai/gpt-4", "allow"),
    (["default-models"], None, "openai/o1-mini", "key"),  # openai/o1-* serves it, not openai/*
    (["default-models"], None, "gpt-4", "key"),
    (["restricted-models"], None, "openai/o1-mini", "allow"),
    (["restricted-models"], None, "openai/gpt-4", "key"),
    (["default-models", "restricted-models"], None, "openai/o1-mini", "allow"),
    ([], ["beta-models"], "gpt-4", "allow"),
    ([], ["beta-models"], "gpt-4o", "team"),
    ([], ["default-models"], "openai/gpt-4", "allow"),
    ([], ["default-models"], "openai/o1-preview", "team"),
    (["no-such-group"], None, "gpt-4", "key"),
    # all-team-models defers to the team layer
    (["all-team-models"], None, "gpt-4o", "allow"),
    (["all-team-models"], None, "openai/o1-mini", "allow"),
    (["all-team-models"], [], "azure-gpt-3.5", "allow"),
    (["all-team-models"], ["gpt-4"], "gpt-4", "allow"),
    (["all-team-models"], ["gpt-4"], "gpt-4o", "team"),
    (["all-team-models"], ["beta-models"], FIREWORKS, "allow"),
    (["all-team-models"], ["beta-models"], "mock-gpt", "team"),
    # all-proxy-models and *
    (["all-proxy-models"], None, "gpt-4o", "allow"),
    (["all-proxy-models"], None, "openai/o1-mini", "allow"),
    (["*"], None, "mock-gpt", "allow"),
    (["*"], None, "openai/o1-mini", "allow"),
    ([], ["all-proxy-models"], "azure-gpt-3.5", "allow"),
    ([], ["*"], "openai/gpt-4", "allow"),
    (["all-proxy-models"], ["gpt-4"], "gpt-4o", "team"),
    (["gpt-4"], ["all-proxy-models"], "gpt-4o", "key"),
    # both layers must allow; the key layer is asked first
    (["gpt-4", "gpt-4o"], ["gpt-4"], "gpt-4", "allow"),
    (["gpt-4", "gpt-4o"], ["gpt-4"], "gpt-4o", "team"),
    (["gpt-4"], ["gpt-4", "gpt-4o"], "gpt-4o", "key"),
    (["gpt-4o"], ["gpt-4"], "gpt-4", "key"),
    (["gpt-4o"], ["gpt-3.5-turbo"], "mock-gpt", "key"),
    (["beta-models"], ["gpt-4"], "gpt-4", "allow"),
    (["beta-models"], ["gpt-4"], FIREWORKS, "team"),
    (["openai/*"], ["restricted-models"], "openai/o1-mini", "allow"),
    (["openai/*"], ["restricted-models"], "openai/gpt-4", "team"),
    # a name no route serves: allowed by name (then 404 model_not_found) or denied
    ([], None, "gpt-5", "allow"),
    (["gpt-5"], None, "gpt-5", "allow"),
    (["gpt-*"], None, "gpt-5", "allow"),
    (["gpt-4"], None, "gpt-5", "key"),
    (["beta-models"], None, "gpt-5", "key"),
    ([], ["gpt-5"], "gpt-5", "allow"),
    ([], ["gpt-4"], "gpt-5", "team"),
]


@pytest.mark.parametrize("key_models, team_models, requested, expected", ACCESS_MATRIX)
def test_access_matrix(key_models, team_models, requested, expected):
    assert decide(grant(key_models, team_models), requested) == expected


def test_allowed_name_without_a_route_passes_access_and_then_is_not_found():
    key_grant = grant(["gpt-5"])

    assert GUIDE.resolve("gpt-5") is None
    check_access(key_grant, "gpt-5", None, GUIDE)  # no denial: the relay answers 404 model_not_found next


def test_a_team_without_restrictions_is_not_the_same_as_no_team():
    # team_models=() with a team_id: the team layer allows everything; the key layer still decides
    assert decide(grant(["gpt-4"], []), "gpt-4o") == "key"
    assert decide(grant(["all-team-models"], []), "gpt-4o") == "allow"


def test_layer_allows_treats_empty_list_as_unrestricted_and_group_only_list_as_restricted():
    route = GUIDE.resolve("gpt-4o").route

    assert layer_allows([], "gpt-4o", route)
    assert not layer_allows(["beta-models"], "gpt-4o", route)
    assert layer_allows(["beta-models"], "gpt-4", GUIDE.resolve("gpt-4").route)


def test_group_grants_only_through_the_route_it_is_given():
    o1 = GUIDE.resolve("openai/o1-mini").route

    assert o1.model_name == "openai/o1-*"
    assert not layer_allows(["default-models"], "openai/o1-mini", o1)
    assert layer_allows(["restricted-models"], "openai/o1-mini", o1)
    assert not layer_allows(["default-models"], "gpt-5", None)


# --- key status ----------------------------------------------------------------------------------------------------
PAST = NOW - timedelta(days=1)
FUTURE = NOW + timedelta(days=1)


@pytest.mark.parametrize(
    "blocked, team_blocked, expires, error",
    [
        (True, True, PAST, BlockedKeyError),
        (True, False, PAST, BlockedKeyError),
        (True, False, None, BlockedKeyError),
        (False, True, PAST, BlockedTeamError),
        (False, True, FUTURE, BlockedTeamError),
        (False, False, PAST, ExpiredKeyError),
    ],
)
def test_key_status_is_checked_blocked_key_then_blocked_team_then_expiry(blocked, team_blocked, expires, error):
    key_grant = grant(["gpt-4"], ["gpt-4"], blocked=blocked, team_blocked=team_blocked, expires=expires)

    with pytest.raises(error) as raised:
        check_key_status(key_grant, NOW)

    assert type(raised.value) is error
    assert raised.value.status == 401


@pytest.mark.parametrize("expires", [None, FUTURE])
def test_it_accepts_an_unblocked_unexpired_key(expires):
    check_key_status(grant(["gpt-4"], ["gpt-4"], expires=expires), NOW)


def test_status_errors_carry_the_spec_codes():
    codes = {}
    for fields in ({"blocked": True}, {"team_blocked": True}, {"expires": PAST}):
        try:
            check_key_status(grant(team_models=[], **fields), NOW)
        except (BlockedKeyError, BlockedTeamError, ExpiredKeyError) as exc:
            codes[next(iter(fields))] = (exc.type, exc.code)

    assert codes == {
        "blocked": ("authentication_error", "blocked_key"),
        "team_blocked": ("authentication_error", "blocked_team"),
        "expires": ("authentication_error", "expired_key"),
    }


def test_master_grant_skips_status_and_access_checks():
    master = grant(
        ["gpt-4"], ["gpt-4"], is_master=True, blocked=True, team_blocked=True, expires=PAST, key_alias="master"
    )

    check_key_status(master, NOW)
    for requested in ("gpt-4o", "openai/o1-mini", "gpt-5"):
        check_access(master, requested, GUIDE.resolve(requested), GUIDE)
    assert callable_models(master, GUIDE) == GUIDE_EXACT
    assert callable_patterns(master, GUIDE) == ["openai/*", "openai/o1-*"]


# --- denial messages -----------------------------------------------------------------------------------------------
def test_key_denial_names_model_and_key_layer_and_lists_what_the_key_may_use():
    key_grant = grant(["beta-models"], key_alias="ci-key")

    with pytest.raises(ModelNotAllowedError) as raised:
        check_access(key_grant, "gpt-4o", GUIDE.resolve("gpt-4o"), GUIDE)

    exc = raised.value
    assert type(exc) is ModelNotAllowedError
    assert (exc.status, exc.type, exc.code, exc.param) == (403, "key_model_access_denied", "model_not_allowed", "model")
    assert "Key 'ci-key'" in exc.message
    assert "'gpt-4o'" in exc.message
    assert f"This key may use: gpt-4, {FIREWORKS}." in exc.message
    assert "/v1/models" in exc.message
    assert "beta-models" not in exc.message


def test_team_denial_names_model_and_team_layer_and_lists_what_the_team_may_use():
    key_grant = grant(["all-team-models"], ["azure-gpt-3.5"], team_alias="litellm-dev")

    with pytest.raises(TeamModelNotAllowedError) as raised:
        check_access(key_grant, "BEDROCK_GROUP", GUIDE.resolve("BEDROCK_GROUP"), GUIDE)

    exc = raised.value
    assert (exc.status, exc.type, exc.code, exc.param) == (
        403,
        "team_model_access_denied",
        "model_not_allowed",
        "model",
    )
    assert exc.message.startswith("Team 'litellm-dev' may not use model 'BEDROCK_GROUP'.")
    assert "This team may use: azure-gpt-3.5." in exc.message
    assert "See GET /v1/models" in exc.message


def test_denial_message_uses_key_preview_and_team_id_without_aliases():
    with pytest.raises(ModelNotAllowedError) as raised:
        check_access(grant(["gpt-4"]), "gpt-4o", GUIDE.resolve("gpt-4o"), GUIDE)
    assert "Key 'sk-...abcd'" in raised.value.message

    with pytest.raises(TeamModelNotAllowedError) as raised:
        check_access(grant([], ["gpt-4"], team_id="ml-team"), "gpt-4o", GUIDE.resolve("gpt-4o"), GUIDE)
    assert "Team 'ml-team'" in raised.value.message


def test_denial_message_lists_at_most_20_models():
    names = [f"model-{i:02d}" for i in range(25)]
    table = build_route_table([deployment(name, f"openai/{name}") for name in [*names, "other"]])

    with pytest.raises(ModelNotAllowedError) as raised:
        check_access(grant(["model-*"]), "other", table.resolve("other"), table)

    message = raised.value.message
    listed = [name for name in names if name in message]
    assert listed == names[:20]
    assert "(and 5 more)" in message
    assert "'other'" in message
    assert "/v1/models" in message


def test_denial_message_says_when_nothing_is_allowed():
    with pytest.raises(ModelNotAllowedError) as raised:
        check_access(grant(["no-such-group"]), "gpt-4", GUIDE.resolve("gpt-4"), GUIDE)

    assert "This key may use: no configured model." in raised.value.message


# --- /v1/models ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key_models, team_models, models, patterns",
    [
        ([], None, GUIDE_EXACT, ["openai/*", "openai/o1-*"]),
        ([], [], GUIDE_EXACT, ["openai/*", "openai/o1-*"]),
        (["all-proxy-models"], None, GUIDE_EXACT, ["openai/*", "openai/o1-*"]),
        (["*"], None, GUIDE_EXACT, ["openai/*", "openai/o1-*"]),
        (["beta-models"], None, ["gpt-4", FIREWORKS], []),
        (["gpt-4", "gpt-4o"], ["gpt-4o", "azure-gpt-3.5"], ["gpt-4o"], []),
        (["all-team-models"], ["beta-models"], ["gpt-4", FIREWORKS], []),
        (["all-team-models"], None, GUIDE_EXACT, ["openai/*", "openai/o1-*"]),
        (["openai/*"], None, [], ["openai/*", "openai/o1-*"]),
        (["default-models"], None, [], ["openai/*"]),
        (["restricted-models"], None, [], ["openai/o1-*"]),
        (["gpt-*"], None, ["gpt-3.5-turbo", "gpt-4", "gpt-4o"], []),
        (["gpt-5"], None, [], []),
        (["gpt-4", "default-models"], ["gpt-4", "openai/*"], ["gpt-4"], ["openai/*"]),
        (["gpt-4"], ["gpt-4o"], [], []),
    ],
)
def test_callable_models_are_exact_routes_in_both_layers_and_patterns_are_separate(
    key_models, team_models, models, patterns
):
    key_grant = grant(key_models, team_models)

    assert callable_models(key_grant, GUIDE) == models
    assert callable_patterns(key_grant, GUIDE) == patterns


def test_callable_models_never_lists_groups_specials_or_patterns():
    key_grant = grant(["beta-models", "all-proxy-models", "openai/*", "all-team-models"], [])

    listed = callable_models(key_grant, GUIDE)

    assert listed == GUIDE_EXACT
    assert not {"beta-models", "default-models", "all-proxy-models", "all-team-models", "*"} & set(listed)
    assert not any("*" in name for name in listed)


def test_callable_models_agree_with_check_access():
    key_grant = grant(["beta-models", "gpt-4o"], ["gpt-4", "gpt-4o", "mock-gpt"])
    allowed = callable_models(key_grant, GUIDE)

    assert allowed == ["gpt-4", "gpt-4o"]
    assert {name: decide(key_grant, name) for name in GUIDE_EXACT} == {
        "gpt-3.5-turbo": "key",
        "gpt-4": "allow",
        "gpt-4o": "allow",
        "azure-gpt-3.5": "key",
        FIREWORKS: "team",
        "mock-gpt": "key",
    }


# --- /key/generate: may a key of this team list this entry? ----------------------------------------------------------
@pytest.mark.parametrize(
    "team_models, entry, expected",
    [
        # an unrestricted team accepts anything
        ([], "gpt-4o", True),
        ([], "beta-models", True),
        ([], "all-proxy-models", True),
        ([], "*", True),
        ([], "openai/*", True),
        (["all-proxy-models"], "all-proxy-models", True),
        (["*"], "restricted-models", True),
        # all-team-models always
        (["gpt-4"], "all-team-models", True),
        (["beta-models"], "all-team-models", True),
        # everything is refused for a restricted team
        (["gpt-4"], "all-proxy-models", False),
        (["gpt-4"], "*", False),
        (["beta-models"], "all-proxy-models", False),
        (["all-*"], "all-proxy-models", False),  # even when a team pattern happens to match the special's spelling
        # group entries: only when the team lists the group
        (["beta-models"], "beta-models", True),
        (["gpt-4"], "beta-models", False),
        (["gpt-4", FIREWORKS], "beta-models", False),  # covering every route of a group is not listing it
        (["beta-models"], "default-models", False),
        # model names: when the team layer lets them through
        (["gpt-4"], "gpt-4", True),
        (["gpt-4"], "gpt-4o", False),
        (["beta-models"], "gpt-4", True),
        (["beta-models"], FIREWORKS, True),
        (["beta-models"], "gpt-4o", False),
        (["openai/*"], "openai/gpt-4", True),
        (["default-models"], "openai/gpt-4", True),
        (["default-models"], "openai/o1-mini", False),
        # patterns: when the team lists them or a team pattern covers them
        (["openai/*"], "openai/*", True),
        (["openai/*"], "openai/o1-*", True),
        (["openai/*"], "openai/gpt-4*", True),
        (["openai/o1-*"], "openai/*", False),
        (["gpt-4"], "gpt-*", False),
        (["openai/gpt-4"], "openai/*", False),
    ],
)
def test_team_allows_entry(team_models, entry, expected):
    assert team_allows_entry(team_models, entry, GUIDE) is expected
