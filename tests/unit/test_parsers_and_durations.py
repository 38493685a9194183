"""The lenient JSON of LiteLLM's curl examples, and LiteLLM's duration strings (SPEC §4). Pure: no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from accounts.durations import add_duration, is_duration
from gateway.parsers import loads_lenient, relax_json

GUIDE_BODY = '{"models": ["beta-models"], # 👈 Model Access Group\n\t\t\t"max_budget": 0,}'


# --- relax_json ----------------------------------------------------------------------------------------------------
def test_it_reads_the_guide_body_with_comment_and_trailing_comma():
    assert json.loads(relax_json(GUIDE_BODY)) == {"models": ["beta-models"], "max_budget": 0}
    assert loads_lenient(GUIDE_BODY.encode("utf-8")) == {"models": ["beta-models"], "max_budget": 0}


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1,}', {"a": 1}),
        ('{"a": [1, 2,],}', {"a": [1, 2]}),
        ('{"a": [1, 2 , \n\t ] , \n}', {"a": [1, 2]}),
        ('{"a": 1, # why\n}', {"a": 1}),
        ('# leading comment\n{"a": 1}', {"a": 1}),
        ('{"a": 1} # trailing comment without newline', {"a": 1}),
        ('{"a": [1, # one\n 2 # two\n]}', {"a": [1, 2]}),
        ('{"a": {"b": {},},}', {"a": {"b": {}}}),
    ],
)
def test_it_drops_comments_and_trailing_commas_outside_strings(text, expected):
    assert json.loads(relax_json(text)) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": "x # not a comment"}', {"a": "x # not a comment"}),
        ('{"a": "[1,]"}', {"a": "[1,]"}),
        ('{"a": "{b,}"}', {"a": "{b,}"}),
        ('{"a": "ends with comma,"}', {"a": "ends with comma,"}),
        ('{"a": "quote \\" # still inside"}', {"a": 'quote " # still inside'}),
        ('{"a": "backslash \\\\", "b": "#,]"}', {"a": "backslash \\", "b": "#,]"}),
        ('{"#key,": ",}"}', {"#key,": ",}"}),
    ],
)
def test_it_keeps_hashes_and_commas_inside_strings(text, expected):
    assert relax_json(text) == text
    assert json.loads(relax_json(text)) == expected


def test_it_keeps_commas_between_items():
    assert relax_json('{"a": [1, 2], "b": 3}') == '{"a": [1, 2], "b": 3}'


def test_loads_lenient_prefers_strict_json():
    assert loads_lenient(b'{"a": "x # y", "b": [1, 2]}') == {"a": "x # y", "b": [1, 2]}


@pytest.mark.parametrize("raw", [b"{", b"{'a': 1}", b'{"a": }', b"not json", b'{"a": 1 # no newline, no brace'])
def test_loads_lenient_still_refuses_what_is_not_json(raw):
    with pytest.raises(ValueError):
        loads_lenient(raw)


# --- durations -----------------------------------------------------------------------------------------------------
START = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("30s", START + timedelta(seconds=30)),
        ("15m", START + timedelta(minutes=15)),
        ("2h", START + timedelta(hours=2)),
        ("1d", START + timedelta(days=1)),
        ("1w", START + timedelta(weeks=1)),
        ("0d", START),
        ("1mo", datetime(2025, 2, 28, 12, 0, tzinfo=UTC)),  # clamped to the end of a shorter month
        ("12mo", datetime(2026, 1, 31, 12, 0, tzinfo=UTC)),
        ("13mo", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),
    ],
)
def test_durations_parse(value, expected):
    assert is_duration(value)
    assert add_duration(START, value) == expected


def test_a_month_crosses_the_year():
    assert add_duration(datetime(2024, 12, 15, tzinfo=UTC), "1mo") == datetime(2025, 1, 15, tzinfo=UTC)
    assert add_duration(datetime(2024, 1, 31, tzinfo=UTC), "1mo") == datetime(2024, 2, 29, tzinfo=UTC)  # leap year


def test_m_means_minutes_and_mo_means_months():
    assert add_duration(START, "1m") - START == timedelta(minutes=1)
    assert add_duration(START, "1mo").month == 2


@pytest.mark.parametrize(
    "value", ["", "30", "s", "d1", "1y", "1.5h", "-1d", "1 month", "1M", "1D", "1mon", "30sec", "1h30m", "one day"]
)
def test_bad_durations_raise_value_error(value):
    assert not is_duration(value)
    with pytest.raises(ValueError) as raised:
        add_duration(START, value)
    assert f"'{value}' is not a duration" in str(raised.value)
