"""What a request costs (SPEC §5, issue 3 item 1): usage times the deployment's prices, built-in prices that config
overrides, and streamed requests costed from the upstream's usage chunk or, where the provider has none, by counting.
"""

from __future__ import annotations

import pytest

from gateway import accounting, mock
from gateway.models import RequestLog
from gateway.pricing import BUILT_IN_PRICES, Prices, prices_for
from models_registry import providers
from models_registry.models import Deployment
from models_registry.registry import invalidate_routes
from models_registry.routing import DeploymentSpec
from tests.limits.support import (
    COMPLETION_TOKENS,
    PING,
    PRICED_COST,
    PROMPT_TOKENS,
    chat,
    read_stream,
    stream_request,
    streamed_text,
)

M = 1_000_000


def only_log_row() -> RequestLog:
    accounting.flush()
    rows = list(RequestLog.objects.all())
    assert len(rows) == 1, rows
    return rows[0]


# --- pure pricing ---------------------------------------------------------------------------------------------------
def spec(input_price=None, output_price=None) -> DeploymentSpec:
    return DeploymentSpec(
        id="d", model_name="m", model="openai/m", input_cost_per_token=input_price, output_cost_per_token=output_price
    )


@pytest.mark.parametrize(
    ("input_price", "output_price", "upstream_model", "expected"),
    [
        (None, None, "gpt-4o-mini", (0.15 / M, 0.6 / M)),  # built-in table
        (None, None, "gpt-4o", (2.5 / M, 10 / M)),
        (1.0, 2.0, "gpt-4o-mini", (1.0, 2.0)),  # the deployment's own prices win
        (0.0, 0.0, "gpt-4o-mini", (0.0, 0.0)),  # a deployment may make a known model free
        (1.0, None, "gpt-4o-mini", (1.0, 0.6 / M)),  # one price set: the other still comes from the table
        (None, None, "no-such-model", (None, None)),  # unknown
    ],
)
def test_deployment_prices_override_the_built_in_table(input_price, output_price, upstream_model, expected):
    prices = prices_for(spec(input_price, output_price), upstream_model)
    if None in expected:
        assert (prices.input, prices.output) == expected
    else:
        assert (prices.input, prices.output) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("prices", "known", "free"),
    [
        (Prices(1.0, 2.0), True, False),
        (Prices(0.0, 0.0), True, True),
        (Prices(0.0, 1.0), True, False),
        (Prices(0.0, None), False, False),  # half-known is not free: budgets still apply
        (Prices(None, None), False, False),  # unknown prices count as priced (SPEC §5)
    ],
)
def test_only_both_prices_zero_is_free(prices, known, free):
    assert (prices.known, prices.free) == (known, free)


@pytest.mark.parametrize(
    ("prices", "prompt", "completion", "cost"),
    [
        (Prices(1.0, 2.0), 12, 2, 16.0),
        (Prices(0.5, 0.25), 12, 2, 6.5),
        (Prices(None, None), 12, 2, 0.0),  # unknown prices cost nothing (but still count as priced)
        (Prices(1.0, 2.0), 0, 0, 0.0),
    ],
)
def test_cost_is_prompt_tokens_times_input_price_plus_completion_tokens_times_output_price(
    prices, prompt, completion, cost
):
    assert prices.cost(prompt, completion) == cost


def test_the_built_in_table_prices_well_known_models_per_token():
    input_price, output_price = BUILT_IN_PRICES["gpt-4o-mini"]
    assert (input_price * M, output_price * M) == pytest.approx((0.15, 0.6))
    assert all(0 < i < 1e-3 and 0 < o < 1e-3 for i, o in BUILT_IN_PRICES.values())


# --- cost of relayed requests ---------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "input_price", "output_price"),
    [
        ("priced", 1.0, 2.0),  # model_info prices
        ("mini-own-price", 0.5, 0.25),  # litellm_params prices override the built-in gpt-4o-mini price
        ("mini", 0.15 / M, 0.6 / M),  # built-in price of the upstream model
        ("wild/priced-model", 1.0, 2.0),  # a wildcard route's deployment prices
        ("free", 0.0, 0.0),
        ("unpriced", 0.0, 0.0),  # unknown price: cost 0, tokens still recorded
    ],
)
def test_a_request_costs_its_usage_times_the_deployment_prices(
    anon, make_key, limits_routes, model, input_price, output_price
):
    _, key = make_key()
    response = chat(anon, key, model)
    assert response.status_code == 200, response.content
    assert response.data["usage"]["prompt_tokens"] == PROMPT_TOKENS
    row = only_log_row()
    assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        "upstream",
    )
    assert row.cost == pytest.approx(PROMPT_TOKENS * input_price + COMPLETION_TOKENS * output_price)


@pytest.mark.django_db
def test_prices_changed_on_the_deployment_apply_to_the_next_request(anon, make_key, limits_routes):
    _, key = make_key()
    Deployment.objects.filter(model_name="unpriced").update(input_cost_per_token=0.25, output_cost_per_token=0.5)
    invalidate_routes()  # what an admin save does
    assert chat(anon, key, "unpriced").status_code == 200
    assert only_log_row().cost == PROMPT_TOKENS * 0.25 + COMPLETION_TOKENS * 0.5


@pytest.mark.django_db
def test_the_mock_provider_is_costed_from_its_own_usage(anon, make_key, limits_routes):
    _, key = make_key()
    response = chat(anon, key, "mock-priced")
    assert response.status_code == 200, response.content
    usage = response.data["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    row = only_log_row()
    assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
        "upstream",
    )
    assert row.cost == usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0
    assert limits_routes.requests == []  # answered locally


# --- streamed requests ----------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_stream_is_costed_from_a_usage_chunk_the_client_did_not_ask_for_and_does_not_see(
    client, make_key, limits_routes
):
    _, key = make_key()
    events = read_stream(stream_request(client, key, "priced"))
    assert limits_routes.last["body"]["stream_options"] == {"include_usage": True}
    assert not any(isinstance(e, dict) and "usage" in e for e in events), events
    assert all(isinstance(e, dict) and e["choices"] for e in events[:-1]), events
    assert events[-1] == "[DONE]"
    assert streamed_text(events).strip() == "echo: ping"
    row = only_log_row()
    assert (row.stream, row.usage_source) == (True, "upstream")
    assert (row.prompt_tokens, row.completion_tokens, row.cost) == (PROMPT_TOKENS, COMPLETION_TOKENS, PRICED_COST)


@pytest.mark.django_db
def test_a_stream_whose_client_asked_for_usage_keeps_the_usage_chunk(client, make_key, limits_routes):
    _, key = make_key()
    events = read_stream(stream_request(client, key, "priced", stream_options={"include_usage": True}))
    assert limits_routes.last["body"]["stream_options"] == {"include_usage": True}
    usage_chunks = [e for e in events if isinstance(e, dict) and e.get("usage")]
    assert len(usage_chunks) == 1
    assert usage_chunks[0]["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert usage_chunks[0]["choices"] == []
    assert events[-1] == "[DONE]"
    row = only_log_row()
    assert (row.usage_source, row.cost) == ("upstream", PRICED_COST)


@pytest.mark.django_db
def test_a_provider_without_stream_usage_gets_no_stream_options_and_is_costed_by_counting(
    client, make_key, limits_routes
):
    assert "mistral" not in providers.STREAM_USAGE_PROVIDERS
    _, key = make_key()
    events = read_stream(stream_request(client, key, "mistral-x"))
    sent = limits_routes.last["body"]
    assert sent["model"] == "x"
    assert "stream_options" not in sent
    text = streamed_text(events)
    assert text.strip() == "echo: ping"
    expected = mock.usage_for({"messages": PING}, text)
    row = only_log_row()
    assert row.usage_source == "counted"
    assert (row.prompt_tokens, row.completion_tokens) == (expected["prompt_tokens"], expected["completion_tokens"])
    assert row.completion_tokens > 0
    assert row.cost == row.prompt_tokens * 1.0 + row.completion_tokens * 2.0


@pytest.mark.django_db
def test_a_provider_without_stream_usage_still_passes_on_a_usage_request_of_the_client(client, make_key, limits_routes):
    _, key = make_key()
    events = read_stream(stream_request(client, key, "mistral-x", stream_options={"include_usage": True}))
    assert limits_routes.last["body"]["stream_options"] == {"include_usage": True}
    assert any(isinstance(e, dict) and e.get("usage") for e in events)
    row = only_log_row()
    assert (row.usage_source, row.prompt_tokens, row.completion_tokens) == (
        "upstream",
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("include_usage", "source"), [(False, "counted"), (True, "upstream")])
def test_a_mock_stream_is_costed(client, make_key, limits_routes, include_usage, source):
    _, key = make_key()
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    events = read_stream(stream_request(client, key, "mock-priced", **extra))
    assert any(isinstance(e, dict) and e.get("usage") for e in events) is include_usage
    expected = mock.usage_for({"messages": PING}, "ping")
    row = only_log_row()
    assert row.usage_source == source
    assert (row.prompt_tokens, row.completion_tokens) == (expected["prompt_tokens"], expected["completion_tokens"])
    assert row.cost == row.prompt_tokens * 1.0 + row.completion_tokens * 2.0
