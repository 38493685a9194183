"""Resolving a requested model name to a route (SPEC §2). Pure: no database."""

from __future__ import annotations

import pytest

from models_registry.routing import DeploymentSpec, build_route_table, pattern_matches


def spec(model_name: str, model: str | None = None, *, groups: tuple[str, ...] = (), id: str = "") -> DeploymentSpec:
    return DeploymentSpec(
        id=id or f"{model_name}#0",
        model_name=model_name,
        model=model or f"openai/{model_name}",
        access_groups=frozenset(groups),
    )


def table_of(*names: str):
    """A route table with one deployment per name, in the order given (= config order)."""
    return build_route_table(spec(name) for name in names)


def resolved_name(table, requested: str) -> str | None:
    match = table.resolve(requested)
    return None if match is None else match.route.model_name


# --- exact beats wildcard ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "names",
    [
        ("*", "openai/*", "openai/gpt-4o"),
        ("openai/gpt-4o", "openai/*", "*"),
        ("openai/gpt-4o-*", "openai/gpt-4o"),
    ],
)
def test_exact_name_wins_over_every_wildcard(names):
    table = table_of(*names)

    match = table.resolve("openai/gpt-4o")

    assert match.route.model_name == "openai/gpt-4o"
    assert not match.route.is_wildcard
    assert match.captures == ()


def test_exact_route_named_like_a_provider_model_beats_catch_all():
    table = table_of("*", "gpt-4")

    assert resolved_name(table, "gpt-4") == "gpt-4"
    assert resolved_name(table, "gpt-4-turbo") == "*"


# --- most specific wildcard ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "names",
    [("openai/*", "openai/o1-*"), ("openai/o1-*", "openai/*")],
    ids=["generic-first", "specific-first"],
)
@pytest.mark.parametrize(
    "requested, expected",
    [
        ("openai/gpt-4", "openai/*"),
        ("openai/o1-mini", "openai/o1-*"),
        ("openai/o1-", "openai/o1-*"),
        ("openai/o1", "openai/*"),
    ],
)
def test_guide_example_resolves_the_same_regardless_of_config_order(names, requested, expected):
    assert resolved_name(table_of(*names), requested) == expected


def test_longest_literal_text_wins_over_config_order():
    table = table_of("*", "a*", "ab*", "abc*")

    assert resolved_name(table, "abcd") == "abc*"
    assert resolved_name(table, "abx") == "ab*"
    assert resolved_name(table, "ax") == "a*"
    assert resolved_name(table, "x") == "*"


def test_longer_literal_text_wins_even_with_more_stars():
    # "a*b*c" has 3 literal characters and 2 stars, "ab*" has 2 and 1: literal text is compared first.
    table = table_of("ab*", "a*b*c")

    assert resolved_name(table, "abxc") == "a*b*c"
    assert resolved_name(table, "abxd") == "ab*"


def test_fewer_stars_win_when_literal_text_ties():
    table = table_of("a*b*", "ab*")

    assert resolved_name(table, "abxb") == "ab*"


@pytest.mark.parametrize("names, expected", [(("a*", "*a"), "a*"), (("*a", "a*"), "*a")])
def test_config_order_breaks_a_full_tie(names, expected):
    assert resolved_name(table_of(*names), "aa") == expected


def test_only_the_most_specific_route_serves_the_request():
    table = build_route_table(
        [
            spec("openai/*", "openai/*", id="generic"),
            spec("openai/o1-*", "openai/o1-*", id="o1"),
        ]
    )

    match = table.resolve("openai/o1-mini")

    assert [d.id for d in match.route.deployments] == ["o1"]


# --- the matcher -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pattern, name",
    [
        ("openai/*", "openai/gpt-4"),
        ("*", "hosted_vllm/org/model"),  # `*` runs across `/`
        ("openai/*", "openai/org/deep/model"),
        ("openai/*", "openai/"),  # and matches nothing at all
        ("a*b", "ab"),
        ("*", ""),
        ("gpt-*-mini", "gpt-4o-mini"),
        ("a.b*", "a.bc"),
    ],
)
def test_star_matches_any_run_including_slash_and_empty(pattern, name):
    assert pattern_matches(pattern, name)


@pytest.mark.parametrize(
    "pattern, name",
    [
        ("openai/*", "xopenai/gpt-4"),  # whole name only: no match inside a longer name
        ("o1-*", "openai/o1-mini"),
        ("*-mini", "gpt-4o-mini-2024"),
        ("openai/*", "OpenAI/gpt-4"),  # case-sensitive
        ("openai/*", " openai/gpt-4"),  # no trimming
        ("a.b*", "axbc"),  # regex characters are literal
        ("gpt-4(o)*", "gpt-4o"),
        ("gpt-?", "gpt-4"),
    ],
)
def test_pattern_must_match_the_whole_name_literally(pattern, name):
    assert not pattern_matches(pattern, name)


@pytest.mark.parametrize(
    "requested",
    ["GPT-4", "Gpt-4", " gpt-4", "gpt-4 ", "gpt-4\n", "gpt-4-turbo", "gpt", "openai/fake", "fake", "gpt-4#0"],
)
def test_exact_names_are_case_sensitive_untrimmed_and_public_only(requested):
    table = build_route_table([spec("gpt-4", "openai/fake", id="gpt-4#0")])

    assert table.resolve(requested) is None
    assert resolved_name(table, "gpt-4") == "gpt-4"


def test_wildcard_route_is_case_sensitive():
    table = table_of("openai/*")

    assert table.resolve("OPENAI/gpt-4") is None
    assert resolved_name(table, "openai/GPT-4") == "openai/*"


def test_empty_star_capture_resolves():
    match = table_of("openai/*").resolve("openai/")

    assert match.route.model_name == "openai/*"
    assert match.captures == ("",)


def test_nothing_matches_returns_none():
    assert table_of("gpt-4", "openai/*").resolve("anthropic/claude-3") is None
    assert table_of().resolve("gpt-4") is None


# --- upstream model -------------------------------------------------------------------------------------------------
def upstream_for(deployments: list[DeploymentSpec], requested: str) -> str:
    match = build_route_table(deployments).resolve(requested)
    return match.route.deployments[0].upstream_model(match.captures)


@pytest.mark.parametrize(
    "model_name, model, requested, upstream",
    [
        ("openai/*", "openai/*", "openai/gpt-4", "gpt-4"),
        ("openai/o1-*", "openai/o1-*", "openai/o1-mini", "o1-mini"),
        ("*", "openai/*", "gpt-4o", "gpt-4o"),
        ("*", "openai/*", "org/model", "org/model"),  # the prefix removed is the deployment's, not the caller's
        ("team-*/model-*", "openai/*-v-*", "team-a/model-b", "a-v-b"),  # left to right
        ("*/*", "hosted_vllm/*/*-chat", "meta/llama", "meta/llama-chat"),
        ("my-*", "hosted_vllm/org/*", "my-llama", "org/llama"),
        ("fixed-*", "openai/gpt-4o", "fixed-anything", "gpt-4o"),  # no `*` in the model: sent as is
        ("gpt-4", "openai/fake", "gpt-4", "fake"),
    ],
)
def test_upstream_model_substitutes_captures_then_drops_the_provider(model_name, model, requested, upstream):
    assert upstream_for([spec(model_name, model)], requested) == upstream


@pytest.mark.parametrize(
    "model, upstream",
    [
        ("hosted_vllm/org/model", "org/model"),
        ("gpt-4", "gpt-4"),
        ("openai/gpt-4", "gpt-4"),
        ("azure/chatgpt-v-2", "chatgpt-v-2"),
        (
            "fireworks_ai/accounts/fireworks/models/llama-v3-70b-instruct",
            "accounts/fireworks/models/llama-v3-70b-instruct",
        ),
    ],
)
def test_upstream_model_removes_only_the_provider_prefix(model, upstream):
    deployment = spec("x", model)

    assert deployment.upstream_model() == upstream
    assert deployment.upstream_model(("ignored",)) == upstream


def test_deployment_provider_defaults_to_openai_without_prefix():
    assert spec("gpt-4", "gpt-4").provider == "openai"
    assert spec("m", "hosted_vllm/org/model").provider == "hosted_vllm"


# --- deployments sharing a model_name -------------------------------------------------------------------------------
def test_deployments_sharing_a_model_name_form_one_route_with_all_their_groups():
    table = build_route_table(
        [
            spec("gpt-4", "openai/gpt-4", groups=("beta-models",), id="east"),
            spec("gpt-4o", "openai/gpt-4o", groups=("other",), id="solo"),
            spec("gpt-4", "azure/gpt-4", groups=("eu-models", "beta-models"), id="west"),
        ]
    )

    route = table.resolve("gpt-4").route

    assert len(table) == 2
    assert [d.id for d in route.deployments] == ["east", "west"]
    assert route.access_groups == frozenset({"beta-models", "eu-models"})
    assert [r.model_name for r in table.routes] == ["gpt-4", "gpt-4o"]  # first-seen order
    assert table.access_groups == frozenset({"beta-models", "eu-models", "other"})


def test_wildcard_deployments_sharing_a_pattern_form_one_route():
    table = build_route_table(
        [spec("openai/*", "openai/*", groups=("a",), id="one"), spec("openai/*", "openai/*", groups=("b",), id="two")]
    )

    route = table.resolve("openai/gpt-4").route

    assert [d.id for d in route.deployments] == ["one", "two"]
    assert route.access_groups == frozenset({"a", "b"})
    assert table.get("openai/*") is route


def test_get_finds_routes_by_exact_public_name_only():
    table = table_of("gpt-4", "openai/*")

    assert table.get("gpt-4").model_name == "gpt-4"
    assert table.get("openai/*").model_name == "openai/*"
    assert table.get("openai/gpt-4") is None  # get() does not resolve wildcards
