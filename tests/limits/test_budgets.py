"""Budgets (SPEC §5, issue 3 item 3) on both counter stores: spend at or over max_budget refuses the next request
with 429 budget_exceeded; free routes are never refused; teams cap all their keys; budget periods reset spend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts import budgets
from accounts.models import Team, VirtualKey
from gateway import accounting
from tests.limits.support import (
    PRICED_COST,
    assert_budget_exceeded,
    chat,
    read_stream,
    stream_request,
    update_row,
)

pytestmark = pytest.mark.django_db


def test_spend_reaching_the_budget_refuses_the_next_request(anon, make_key, limits_routes, counter_store):
    _, key = make_key(key_alias="ci-bot", max_budget=PRICED_COST)
    assert chat(anon, key).status_code == 200  # spend 0 < 16: admitted, then costs exactly 16
    message = assert_budget_exceeded(chat(anon, key))  # spend 16 >= 16
    assert "Key 'ci-bot'" in message
    assert "budget" in message
    assert f"${PRICED_COST:.6f}" in message  # the spend and the budget
    assert "does not reset" in message
    assert "max_budget" in message


def test_the_budget_message_says_when_it_resets(anon, make_key, limits_routes, counter_store):
    row, key = make_key(key_alias="daily", max_budget=PRICED_COST, budget_duration="1d")
    assert chat(anon, key).status_code == 200
    message = assert_budget_exceeded(chat(anon, key))
    row.refresh_from_db()
    assert f"resets at {row.budget_reset_at.isoformat()}" in message


@pytest.mark.parametrize(
    ("spend", "admitted"),
    [(15.99, True), (16.0, False), (20.0, False)],
)
def test_spend_at_or_over_max_budget_is_refused(anon, make_key, limits_routes, counter_store, spend, admitted):
    row, key = make_key(max_budget=16.0)
    update_row(VirtualKey, row.pk, spend=spend)  # spend recorded by earlier requests (e.g. another process)
    response = chat(anon, key)
    if admitted:
        assert response.status_code == 200, response.content
    else:
        assert_budget_exceeded(response)


@pytest.mark.parametrize("model", ["priced", "mini", "unpriced", "mock-priced"])
def test_a_zero_budget_refuses_every_priced_model(anon, make_key, limits_routes, counter_store, model):
    _, key = make_key(max_budget=0)
    assert_budget_exceeded(chat(anon, key, model))
    assert limits_routes.requests == []  # refused before the relay


def test_unknown_prices_count_as_priced(anon, make_key, limits_routes, counter_store):
    row, key = make_key(max_budget=1.0)
    assert chat(anon, key, "unpriced").status_code == 200  # costs 0 ...
    update_row(VirtualKey, row.pk, spend=1.0)
    assert_budget_exceeded(chat(anon, key, "unpriced"))  # ... but the budget still applies


@pytest.mark.parametrize("budget", [0.0, 1.0])
def test_a_route_with_both_prices_zero_is_never_refused_for_budget(
    anon, make_key, limits_routes, counter_store, budget
):
    row, key = make_key(max_budget=budget)
    update_row(VirtualKey, row.pk, spend=100.0)
    for _ in range(3):
        response = chat(anon, key, "free")
        assert response.status_code == 200, response.content
    assert_budget_exceeded(chat(anon, key, "priced"))


def test_a_team_budget_caps_every_key_of_the_team(anon, make_team, make_key, limits_routes, counter_store):
    team = make_team(team_id="ml", team_alias="ml", max_budget=PRICED_COST)
    _, first = make_key(team_id=team.team_id)
    _, second = make_key(team_id=team.team_id)
    _, outsider = make_key()
    assert chat(anon, first).status_code == 200  # the team's spend reaches its budget
    for key in (first, second):
        assert "Team 'ml'" in assert_budget_exceeded(chat(anon, key))
    assert chat(anon, outsider).status_code == 200


def test_a_team_budget_counts_spend_recorded_in_the_database(anon, make_team, make_key, limits_routes, counter_store):
    team = make_team(team_id="ops", max_budget=5.0)
    _, key = make_key(team_id=team.team_id)
    update_row(Team, team.pk, spend=5.0)
    assert_budget_exceeded(chat(anon, key))


def test_a_key_budget_is_refused_even_when_the_team_has_room(anon, make_team, make_key, limits_routes, counter_store):
    team = make_team(team_id="rich", max_budget=1000.0)
    _, key = make_key(team_id=team.team_id, key_alias="poor", max_budget=0)
    assert "Key 'poor'" in assert_budget_exceeded(chat(anon, key))


def test_a_streamed_request_spends_from_the_budget(client, anon, make_key, limits_routes, counter_store):
    _, key = make_key(max_budget=PRICED_COST)
    read_stream(stream_request(client, key))
    assert_budget_exceeded(chat(anon, key))


def test_a_new_budget_period_starts_with_zero_spend(anon, make_key, limits_routes, counter_store):
    row, key = make_key(max_budget=PRICED_COST, budget_duration="1d")
    assert chat(anon, key).status_code == 200
    accounting.flush()  # the database's spend is now 16 as well
    assert_budget_exceeded(chat(anon, key))

    # The period ends: its reset time is now in the past (the reset job has not run yet).
    update_row(VirtualKey, row.pk, budget_reset_at=timezone.now() - timedelta(hours=1))
    assert chat(anon, key).status_code == 200
    assert_budget_exceeded(chat(anon, key))  # the new period's budget is spent in turn

    # The reset job zeroes the database's spend and moves the reset time on; the period's spend still counts.
    assert accounting.reset_due_budgets() == 1
    reloaded = VirtualKey.objects.get(pk=row.pk)
    assert reloaded.spend == 0.0
    assert reloaded.budget_reset_at > timezone.now()
    update_row(VirtualKey, row.pk)
    assert_budget_exceeded(chat(anon, key))


def test_a_new_team_budget_period_starts_with_zero_spend(anon, make_team, make_key, limits_routes, counter_store):
    team = make_team(team_id="weekly", max_budget=PRICED_COST, budget_duration="1w")
    _, key = make_key(team_id=team.team_id)
    assert chat(anon, key).status_code == 200
    assert_budget_exceeded(chat(anon, key))
    update_row(Team, team.pk, budget_reset_at=timezone.now() - timedelta(minutes=1), spend=PRICED_COST)
    assert chat(anon, key).status_code == 200


def test_the_master_key_skips_budgets(anon, master_key, make_key, limits_routes, counter_store):
    _, key = make_key(max_budget=0)
    assert_budget_exceeded(chat(anon, key))
    for _ in range(3):
        response = chat(anon, master_key)
        assert response.status_code == 200, response.content


# --- the reset job --------------------------------------------------------------------------------------------------
def test_reset_due_budgets_zeroes_spend_and_moves_the_reset_time_forward(make_team, make_key):
    now = timezone.now()
    due, _ = make_key(budget_duration="1d", max_budget=10)
    not_due, _ = make_key(budget_duration="1d", max_budget=10)
    forever, _ = make_key(max_budget=10)
    team = make_team(team_id="t-due", budget_duration="30s", max_budget=10)
    past = now - timedelta(hours=1)
    update_row(VirtualKey, due.pk, spend=7.0, budget_reset_at=past)
    update_row(VirtualKey, not_due.pk, spend=7.0)
    update_row(VirtualKey, forever.pk, spend=7.0)
    update_row(Team, team.pk, spend=3.0, budget_reset_at=now - timedelta(seconds=45))

    assert accounting.reset_due_budgets(now) == 2

    due.refresh_from_db()
    assert (due.spend, due.budget_reset_at) == (0.0, past + timedelta(days=1))
    team.refresh_from_db()
    assert (team.spend, team.budget_reset_at) == (0.0, now + timedelta(seconds=15))
    for row in (not_due, forever):
        row.refresh_from_db()
        assert row.spend == 7.0
    assert accounting.reset_due_budgets(now) == 0  # done once, not again


@pytest.mark.parametrize(("duration", "length"), [("30s", 30), ("1h", 3600), ("1d", 86400), ("30d", 30 * 86400)])
@pytest.mark.parametrize(("path", "extra"), [("/key/generate", {}), ("/team/new", {"team_alias": "budgeted"})])
def test_budget_duration_sets_the_first_reset_time(api, path, extra, duration, length):
    before = timezone.now()
    response = api.post(path, {"max_budget": 5, "budget_duration": duration, **extra})
    assert response.status_code == 200, response.content
    reset_at = timezone.datetime.fromisoformat(response.data["budget_reset_at"])
    assert before + timedelta(seconds=length) <= reset_at <= timezone.now() + timedelta(seconds=length)
    assert response.data["budget_duration"] == duration


def test_a_budget_without_duration_never_resets(api):
    response = api.post("/key/generate", {"max_budget": 5})
    assert response.status_code == 200, response.content
    assert (response.data["budget_duration"], response.data["budget_reset_at"]) == (None, None)


@pytest.mark.parametrize("path", ["/key/update", "/team/update"])
def test_raising_a_budget_takes_effect_at_once(api, anon, make_team, make_key, limits_routes, counter_store, path):
    team = make_team(team_id="ml", max_budget=0 if path == "/team/update" else None)
    _, key = make_key(team_id=team.team_id, max_budget=0 if path == "/key/update" else None)
    assert_budget_exceeded(chat(anon, key))
    target = {"key": key} if path == "/key/update" else {"team_id": "ml"}
    assert api.post(path, {**target, "max_budget": 100.0}).status_code == 200
    assert chat(anon, key).status_code == 200


# --- budget periods (pure) ------------------------------------------------------------------------------------------
T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reset_at", "duration", "now", "end"),
    [
        (None, "1d", T0, None),  # no period: the budget never resets
        (T0, None, T0, None),
        (T0, "1d", T0 - timedelta(hours=1), T0),  # within the first period
        (T0, "1d", T0, T0 + timedelta(days=1)),  # the reset time itself starts the next period
        (T0, "1d", T0 + timedelta(days=2, hours=12), T0 + timedelta(days=3)),  # periods missed while nobody called
        (T0, "30s", T0 + timedelta(seconds=31), T0 + timedelta(seconds=60)),
        (T0, "1mo", T0 + timedelta(days=10), datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),  # calendar months
    ],
)
def test_period_end_is_the_end_of_the_period_containing_now(reset_at, duration, now, end):
    assert budgets.period_end(reset_at, duration, now) == end
    assert budgets.period_id(end) == (0 if end is None else int(end.timestamp()))
