"""Bad budgets, limits and durations (issue 3 item 6): 400 invalid_field naming the field, on every endpoint that
takes them; nothing is created or changed."""

from __future__ import annotations

import json

import pytest

from accounts.models import Team, VirtualKey
from tests.limits.support import assert_error

pytestmark = pytest.mark.django_db

BAD_VALUES = [
    ("max_budget", -1),
    ("max_budget", -0.01),
    ("max_budget", "10"),
    ("max_budget", "ten"),
    ("max_budget", True),
    ("max_budget", [5]),
    ("rpm_limit", -1),
    ("rpm_limit", 1.5),
    ("rpm_limit", "5"),
    ("rpm_limit", False),
    ("tpm_limit", -100),
    ("tpm_limit", "1000"),
    ("tpm_limit", 2.0),
    ("max_parallel_requests", -1),
    ("max_parallel_requests", "2"),
    ("max_parallel_requests", 0.5),
    ("budget_duration", "1 day"),
    ("budget_duration", "10x"),
    ("budget_duration", ""),
    ("budget_duration", "-1d"),
    ("budget_duration", "1.5h"),
    ("budget_duration", "d"),
    ("budget_duration", 30),
    ("budget_duration", "99999999999d"),  # parses, but lands beyond the calendar
]

ENDPOINTS = ["/key/generate", "/key/update", "/team/new", "/team/update"]


@pytest.fixture
def target(make_team, make_key):
    """The body's identifying part for each endpoint (an existing key or team for the updates)."""
    make_team(team_id="existing", max_budget=5.0, rpm_limit=5)
    _, key = make_key(key_alias="existing", max_budget=5.0, rpm_limit=5)
    return {
        "/key/generate": {},
        "/key/update": {"key": key},
        "/team/new": {"team_alias": "new-team"},
        "/team/update": {"team_id": "existing"},
    }


def snapshot():
    fields = ("max_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests")
    return (
        sorted(VirtualKey.objects.values_list(*fields)),
        sorted(Team.objects.values_list(*fields), key=repr),
    )


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_a_bad_budget_limit_or_duration_is_refused_naming_the_field(api, target, path, field, value):
    before = snapshot()
    response = api.post(path, {**target[path], field: value})
    error = assert_error(response, 400, "invalid_field", type="invalid_request_error", param=field)
    assert field in error["message"]
    assert snapshot() == before


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(api, target, path, number):
    before = snapshot()
    body = {**target[path], "max_budget": "@"}
    raw = json.dumps(body).replace('"@"', number)
    assert_error(api.post(path, raw=raw), 400, "invalid_json", type="invalid_request_error")
    assert snapshot() == before


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_budget", 0),
        ("max_budget", 12.5),
        ("rpm_limit", 0),
        ("tpm_limit", 0),
        ("max_parallel_requests", 0),
        ("budget_duration", "30s"),
        ("budget_duration", "1mo"),
        ("max_budget", None),  # clears it
    ],
)
def test_zero_and_valid_values_are_accepted(api, target, path, field, value):
    response = api.post(path, {**target[path], field: value})
    assert response.status_code == 200, response.content
    data = response.data.get("team_info", response.data)
    assert data[field] == value
