"""The request log (issue 3 item 2): one row per request that got past authentication, denied ones included,
written off the request path; spend added to keys and teams with atomic increments; /key/info and /spend/logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.auth import hash_key
from accounts.models import Team, VirtualKey
from gateway import accounting
from gateway.accounting import LogEntry, Writer, write_batch
from gateway.models import RequestLog
from tests.limits.support import (
    COMPLETION_TOKENS,
    PING,
    PRICED_COST,
    PROMPT_TOKENS,
    assert_error,
    chat,
    read_stream,
    stream_request,
    update_row,
)

pytestmark = pytest.mark.django_db


def log_rows() -> list[RequestLog]:
    accounting.flush()
    return list(RequestLog.objects.order_by("created_at", "id"))


# --- what is logged -------------------------------------------------------------------------------------------------
def test_the_client_never_waits_for_the_log_row(anon, make_key, limits_routes):
    _, key = make_key()
    assert chat(anon, key).status_code == 200
    assert RequestLog.objects.count() == 0  # queued for the background writer, not written by the request
    assert accounting.flush() == 1
    assert RequestLog.objects.count() == 1


def test_a_relayed_request_logs_who_what_where_and_what_it_cost(anon, make_team, make_key, limits_routes):
    team = make_team(team_id="ml")
    _, key = make_key(team_id=team.team_id, key_alias="ci-bot")
    started = timezone.now()
    response = chat(anon, key, "wild/priced-model")
    assert response.status_code == 200, response.content
    (row,) = log_rows()
    assert row.created_at >= started - timedelta(seconds=1)
    assert (row.key_hash, row.key_name, row.team_id) == (hash_key(key), "ci-bot", "ml")
    assert (row.requested_model, row.route, row.deployment, row.upstream_model) == (
        "wild/priced-model",
        "wild/*",
        "wild/*#0",
        "priced-model",
    )
    assert (row.status, row.error_code, row.stream) == (200, "", False)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        PROMPT_TOKENS + COMPLETION_TOKENS,
    )
    assert (row.cost, row.usage_source) == (PRICED_COST, "upstream")
    assert 0 < row.upstream_latency_ms <= row.latency_ms
    assert row.request_id.startswith("req-")


def test_a_key_without_alias_is_logged_by_its_preview(anon, make_key, limits_routes):
    row, key = make_key()
    chat(anon, key)
    (logged,) = log_rows()
    assert logged.key_name == row.key_preview == f"sk-...{key[-4:]}"
    assert key not in logged.key_name


def test_the_master_key_is_logged_without_a_key_hash(anon, master_key, limits_routes):
    assert chat(anon, master_key).status_code == 200
    (row,) = log_rows()
    assert (row.key_hash, row.key_name, row.team_id) == ("", "master key", "")


def test_every_request_gets_its_own_row(anon, make_key, limits_routes):
    _, key = make_key()
    for _ in range(3):
        chat(anon, key)
    rows = log_rows()
    assert len(rows) == 3
    assert len({row.request_id for row in rows}) == 3


DENIED = [
    # (key fields, requested model, status, code, logged model)
    ({"models": ["free"]}, "priced", 403, "model_not_allowed", "priced"),
    ({}, "no-such-model", 404, "model_not_found", "no-such-model"),
    ({"max_budget": 0}, "priced", 429, "budget_exceeded", "priced"),
    ({"rpm_limit": 0}, "priced", 429, "rate_limit_exceeded", "priced"),
    ({"blocked": True}, "priced", 401, "blocked_key", ""),  # refused before the body is read (SPEC §3 order)
    ({}, "broken", 500, "test_code", "broken"),  # the upstream's own error
]


@pytest.mark.parametrize(("fields", "model", "status", "code", "logged_model"), DENIED)
def test_a_denied_request_is_logged_with_its_status_and_error_code(
    anon, make_key, limits_routes, fields, model, status, code, logged_model
):
    _, key = make_key(**fields)
    response = chat(anon, key, model)
    assert_error(response, status, code)
    (row,) = log_rows()
    assert (row.status, row.error_code, row.requested_model) == (status, code, logged_model)
    assert (row.key_hash, row.prompt_tokens, row.completion_tokens, row.cost) == (hash_key(key), 0, 0, 0.0)


def test_a_request_with_an_unknown_key_is_not_logged(anon, limits_routes):
    assert_error(chat(anon, "sk-not-a-real-key-000000000"), 401, "invalid_api_key")
    assert log_rows() == []


def test_a_streamed_request_is_logged_once_it_ends(client, make_key, limits_routes):
    _, key = make_key()
    response = stream_request(client, key)
    accounting.flush()
    assert RequestLog.objects.count() == 0  # still streaming
    read_stream(response)
    (row,) = log_rows()
    assert (row.stream, row.status, row.cost) == (True, 200, PRICED_COST)
    assert row.upstream_latency_ms is not None


# --- bodies -----------------------------------------------------------------------------------------------------------
def test_bodies_are_not_stored_by_default(anon, make_key, limits_routes):
    _, key = make_key()
    chat(anon, key)
    (row,) = log_rows()
    assert (row.request_body, row.response_body) == (None, None)


def test_bodies_are_stored_when_the_operator_turns_it_on(anon, make_key, limits_routes, settings):
    settings.MODELGATE_LOG_BODIES = True
    _, key = make_key()
    chat(anon, key)
    (row,) = log_rows()
    assert row.request_body == {"model": "priced", "messages": PING}
    assert row.response_body["choices"][0]["message"]["content"] == "echo: ping"
    assert row.response_body["usage"]["prompt_tokens"] == PROMPT_TOKENS


# --- spend on keys and teams ------------------------------------------------------------------------------------------
def test_spend_reaches_the_key_and_the_team(api, anon, make_team, make_key, limits_routes):
    team = make_team(team_id="ml")
    row, key = make_key(team_id=team.team_id)
    assert row.last_used_at is None
    chat(anon, key)
    chat(anon, key)
    accounting.flush()
    row.refresh_from_db()
    team.refresh_from_db()
    assert (row.spend, team.spend) == (2 * PRICED_COST, 2 * PRICED_COST)
    assert row.last_used_at is not None

    info = api.get("/key/info", {"key": key})
    assert info.status_code == 200
    assert info.data["info"]["spend"] == 2 * PRICED_COST
    assert info.data["info"]["last_used_at"] is not None
    own = anon.get("/key/info", key=key)  # a key may read its own info
    assert own.data["info"]["spend"] == 2 * PRICED_COST
    team_info = api.get("/team/info", {"team_id": "ml"})
    assert team_info.data["team_info"]["spend"] == 2 * PRICED_COST


def entry(key: VirtualKey | None, cost: float, *, team_id: str = "", at: datetime | None = None) -> LogEntry:
    return LogEntry(
        request_id=f"req-test-{id(object())}-{cost}-{at}",
        created_at=at or timezone.now(),
        requested_model="priced",
        status=200,
        key_id=key.pk if key else None,
        team_id=team_id,
        cost=cost,
    )


def test_write_batch_adds_spend_atomically_to_what_the_database_holds(make_team, make_key):
    team = make_team(team_id="ml")
    row, _ = make_key(team_id=team.team_id)
    stale = VirtualKey.objects.get(pk=row.pk)  # read before another process added spend
    update_row(VirtualKey, row.pk, spend=10.0)
    update_row(Team, team.pk, spend=1.0)
    early = timezone.now() - timedelta(minutes=5)
    late = timezone.now()
    write_batch([entry(stale, 1.5, team_id="ml", at=late), entry(stale, 2.5, team_id="ml", at=early)])
    row.refresh_from_db()
    team.refresh_from_db()
    assert (row.spend, team.spend) == (14.0, 5.0)  # F() increments: nothing of the other process's spend is lost
    assert row.last_used_at == late
    assert RequestLog.objects.count() == 2


def test_write_batch_of_free_and_master_requests_touches_no_spend(make_team, make_key):
    team = make_team(team_id="ml")
    row, _ = make_key(team_id=team.team_id)
    write_batch([entry(row, 0.0, team_id="ml"), entry(None, 0.0)])
    row.refresh_from_db()
    team.refresh_from_db()
    assert (row.spend, team.spend) == (0.0, 0.0)
    assert row.last_used_at is not None  # but the key was used


@pytest.mark.django_db(transaction=True)
def test_the_background_writer_writes_everything_queued_when_stopped(settings, make_key):
    settings.MODELGATE_ACCOUNTING = "thread"
    row, _ = make_key()
    writer = Writer()
    for cost in (1.0, 2.0, 3.0):
        writer.submit(entry(row, cost))
    writer.stop()  # a normal shutdown (atexit / gunicorn worker_exit)
    assert RequestLog.objects.count() == 3
    row.refresh_from_db()
    assert row.spend == 6.0


# --- /spend/logs ------------------------------------------------------------------------------------------------------
@pytest.fixture
def three_logs(anon, make_team, make_key, limits_routes):
    """Three logged requests at known times: (key A, team ml, priced), (key A, mini), (key B, no team, priced)."""
    team = make_team(team_id="ml")
    _, key_a = make_key(team_id=team.team_id, key_alias="a")
    _, key_b = make_key(key_alias="b")
    chat(anon, key_a, "priced")
    chat(anon, key_a, "mini")
    chat(anon, key_b, "priced")
    rows = log_rows()
    times = [
        datetime(2026, 5, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 5, 2, 23, 30, tzinfo=UTC),
        datetime(2026, 5, 3, 0, 0, tzinfo=UTC),
    ]
    for row, at in zip(rows, times, strict=True):
        RequestLog.objects.filter(pk=row.pk).update(created_at=at)
    return {"a": key_a, "b": key_b, "ids": [row.request_id for row in rows]}


def spend_logs(api, **params):
    response = api.get("/spend/logs", params)
    assert response.status_code == 200, response.content
    return response.data


def test_spend_logs_lists_newest_first_with_spend_and_tokens(api, three_logs):
    data = spend_logs(api)
    assert [r["request_id"] for r in data] == three_logs["ids"][::-1]
    newest = data[0]
    assert (newest["api_key"], newest["key_name"], newest["team_id"], newest["model"]) == (
        hash_key(three_logs["b"]),
        "b",
        None,
        "priced",
    )
    assert (newest["spend"], newest["prompt_tokens"], newest["total_tokens"], newest["status"]) == (
        PRICED_COST,
        PROMPT_TOKENS,
        PROMPT_TOKENS + COMPLETION_TOKENS,
        200,
    )
    assert newest["startTime"].startswith("2026-05-03T00:00:00")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"team_id": "ml"}, [0, 1]),
        ({"model": "mini"}, [1]),
        ({"start_date": "2026-05-02"}, [1, 2]),
        ({"end_date": "2026-05-02"}, [0, 1]),  # a date as end_date: the whole day
        ({"start_date": "2026-05-02", "end_date": "2026-05-02"}, [1]),
        ({"start_date": "2026-05-01T10:00:01Z"}, [1, 2]),
        ({"end_date": "2026-05-02T23:00:00+00:00"}, [0]),  # a datetime as end_date: up to that moment
        ({"start_date": "2026-05-02T23:30:00", "end_date": "2026-05-03T00:00:01"}, [1, 2]),  # naive: UTC
        ({"start_date": "2026-05-04"}, []),
        ({"start_date": "0001-01-01", "end_date": "9999-12-31"}, [0, 1, 2]),  # the widest range there is
        ({"size": "2"}, [2, 1]),
        ({"size": "2", "page": "2"}, [0]),
        ({"size": "2", "page": "3"}, []),
    ],
)
def test_spend_logs_filters(api, three_logs, params, expected):
    ids = three_logs["ids"]
    assert [r["request_id"] for r in spend_logs(api, **params)] == sorted(
        (ids[i] for i in expected), key=ids.index, reverse=True
    )


@pytest.mark.parametrize("which", ["plaintext", "token", "TOKEN"])
def test_spend_logs_filters_by_key_plaintext_or_token(api, three_logs, which):
    key = three_logs["a"]
    value = {"plaintext": key, "token": hash_key(key), "TOKEN": hash_key(key).upper()}[which]
    data = spend_logs(api, api_key=value)
    assert [r["request_id"] for r in data] == three_logs["ids"][:2][::-1]


def test_spend_logs_finds_one_request_by_id(api, three_logs):
    data = spend_logs(api, request_id=three_logs["ids"][1])
    assert [r["model"] for r in data] == ["mini"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2026/05/02"}, "end_date"),
        ({"start_date": "2026-02-30"}, "start_date"),  # looks like a date, is none
        ({"end_date": "2026-13-01T00:00:00"}, "end_date"),
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "one"}, "page"),
        ({"page": "²"}, "page"),
        ({"size": "0"}, "size"),
        ({"size": "1001"}, "size"),
    ],
)
def test_spend_logs_rejects_bad_dates_and_pages_naming_the_parameter(api, params, param):
    assert_error(api.get("/spend/logs", params), 400, "invalid_field", type="invalid_request_error", param=param)


def test_spend_logs_is_for_the_master_key_only(anon, make_key, three_logs):
    assert_error(anon.get("/spend/logs", key=three_logs["a"]), 403, "admin_only", type="permission_error")
    assert_error(anon.get("/spend/logs", key=None), 401, "invalid_api_key", type="authentication_error")


def test_write_batch_writes_a_full_batch(make_key):
    row, _ = make_key()
    entries = [
        LogEntry(
            request_id=f"req-full-{i}", created_at=timezone.now(), requested_model="priced", status=200,
            key_id=row.pk, cost=0.25, prompt_tokens=i, request_body={"i": i} if i % 2 else None,
        )
        for i in range(500)
    ]  # fmt: skip
    write_batch(entries)
    assert RequestLog.objects.filter(request_id__startswith="req-full-").count() == 500
    logged = RequestLog.objects.get(request_id="req-full-7")
    assert (logged.prompt_tokens, logged.request_body) == (7, {"i": 7})
    row.refresh_from_db()
    assert row.spend == pytest.approx(125.0)


def test_a_batch_with_a_row_written_before_still_writes_the_others_and_adds_only_their_spend(make_key, make_team):
    """On PostgreSQL a fresh batch goes by COPY, which one duplicate request id fails as a whole: the batch is then
    written row by row, skipping what is there."""
    make_team(team_id="ml")
    row, _ = make_key()
    first = LogEntry(request_id="req-dup-1", created_at=timezone.now(), requested_model="m", status=200,
                     key_id=row.pk, team_id="ml", cost=1.0)  # fmt: skip
    write_batch([first])
    later = [
        LogEntry(request_id=f"req-dup-{i}", created_at=timezone.now(), requested_model="m", status=200,
                 key_id=row.pk, team_id="ml", cost=2.0)
        for i in (2, 1, 3)
    ]  # fmt: skip
    write_batch(later)
    assert sorted(RequestLog.objects.filter(request_id__startswith="req-dup-").values_list("request_id", "cost")) == [
        ("req-dup-1", 1.0),
        ("req-dup-2", 2.0),
        ("req-dup-3", 2.0),
    ]
    if connection.vendor == "postgresql":  # SQLite's executemany does not say which rows it inserted
        row.refresh_from_db()
        assert (row.spend, Team.objects.get(pk="ml").spend) == (pytest.approx(5.0), pytest.approx(5.0))


def test_write_batch_stores_every_column_as_given_and_skips_a_row_written_before(make_key):
    """The rows go as binary column arrays, one statement per STATEMENT_ROWS rows on PostgreSQL: text that needs
    quoting in an array literal, NULLs, JSON, floats and times come back as they went in, across statement
    boundaries; a row written again (a retried batch) is skipped, not doubled."""
    row, _ = make_key()
    at = datetime(2026, 11, 29, 3, 4, 5, 123456, tzinfo=UTC)
    tricky = 'a "quoted", {braced} \\ back\'slash NULL ünïcödé'
    entries = [
        LogEntry(
            request_id=f"req-col-{i}", created_at=at + timedelta(seconds=i), requested_model=tricky, status=429,
            key_id=row.pk, key_hash="h" * 64, key_name="NULL", team_id="", route="r", deployment="d,1",
            upstream_model="{}", stream=bool(i % 2), error_code="rate_limited", prompt_tokens=i,
            completion_tokens=2 * i, usage_source="counted", cost=0.125, latency_ms=1.23456,
            upstream_latency_ms=None if i % 3 else 0.5, request_body={"q": tricky, "n": [i, None]},
            response_body=None if i % 2 else {"ok": True},
        )
        for i in range(accounting.STATEMENT_ROWS + 5)
    ]  # fmt: skip
    write_batch(entries)
    write_batch(entries[-3:])  # already there: skipped
    logged = {r.request_id: r for r in RequestLog.objects.filter(request_id__startswith="req-col-")}
    assert len(logged) == len(entries)
    for i in (0, 1, 3, accounting.STATEMENT_ROWS + 4):
        r = logged[f"req-col-{i}"]
        assert (r.created_at, r.requested_model, r.status, r.key_name, r.deployment, r.upstream_model) == (
            at + timedelta(seconds=i),
            tricky,
            429,
            "NULL",
            "d,1",
            "{}",
        )
        assert (r.stream, r.error_code, r.prompt_tokens, r.completion_tokens, r.usage_source) == (
            bool(i % 2),
            "rate_limited",
            i,
            2 * i,
            "counted",
        )
        assert (r.cost, r.latency_ms, r.upstream_latency_ms) == (0.125, 1.235, None if i % 3 else 0.5)
        assert r.request_body == {"q": tricky, "n": [i, None]}
        assert r.response_body == (None if i % 2 else {"ok": True})
    row.refresh_from_db()
    if connection.vendor == "postgresql":  # where a committed batch can be tried again after its connection broke
        assert row.spend == pytest.approx(0.125 * len(entries))  # the skipped rows' spend is not added again
