"""POST /key/delete, /key/block, /key/unblock and /key/regenerate: each takes effect on the relay at once (SPEC §3)."""

from __future__ import annotations

import hashlib
import re

import pytest

from accounts.models import VirtualKey
from tests.api.helpers import assert_chat_works, assert_error, chat

pytestmark = pytest.mark.django_db


# --- /key/delete --------------------------------------------------------------------------------------------------
def test_delete_by_plaintext_stops_the_key_at_once(api, guide_routes, make_key):
    row, plaintext = make_key()
    assert_chat_works(api, plaintext)  # warm the key cache first
    response = api.post("/key/delete", {"keys": [plaintext]})
    assert response.status_code == 200, response.content
    assert response.data == {"deleted_keys": [row.key_hash]}
    assert not VirtualKey.objects.filter(pk=row.pk).exists()
    assert_error(chat(api, plaintext), 401, "invalid_api_key")


def test_delete_by_token(api, guide_routes, make_key):
    row, plaintext = make_key()
    kept, kept_plaintext = make_key()
    response = api.post("/key/delete", {"keys": [row.key_hash]})
    assert response.status_code == 200, response.content
    assert response.data["deleted_keys"] == [row.key_hash]
    assert list(VirtualKey.objects.values_list("pk", flat=True)) == [kept.pk]
    assert_error(chat(api, plaintext), 401, "invalid_api_key")
    assert_chat_works(api, kept_plaintext)


def test_delete_by_key_aliases(api, guide_routes, make_key):
    first, first_plaintext = make_key(key_alias="one")
    second, _ = make_key(key_alias="two")
    kept, _ = make_key(key_alias="three")
    assert_chat_works(api, first_plaintext)
    response = api.post("/key/delete", {"key_aliases": ["one", "two"]})
    assert response.status_code == 200, response.content
    assert sorted(response.data["deleted_keys"]) == sorted([first.key_hash, second.key_hash])
    assert list(VirtualKey.objects.values_list("key_alias", flat=True)) == ["three"]
    assert_error(chat(api, first_plaintext), 401, "invalid_api_key")


def test_delete_by_keys_and_aliases_together(api, make_key):
    first, first_plaintext = make_key()
    second, _ = make_key(key_alias="two")
    response = api.post("/key/delete", {"keys": [first_plaintext], "key_aliases": ["two"]})
    assert response.status_code == 200, response.content
    assert sorted(response.data["deleted_keys"]) == sorted([first.key_hash, second.key_hash])
    assert VirtualKey.objects.count() == 0


def test_delete_of_an_unknown_key_deletes_nothing(api, make_key):
    row, plaintext = make_key()
    response = api.post("/key/delete", {"keys": [plaintext, "sk-no-such-key-000000000000"]})
    assert_error(response, 404, "not_found", param="keys")
    assert VirtualKey.objects.filter(pk=row.pk).exists()


def test_delete_of_an_unknown_alias_deletes_nothing(api, make_key):
    make_key(key_alias="real")
    assert_error(api.post("/key/delete", {"key_aliases": ["real", "ghost"]}), 400, "invalid_field", param="key_aliases")
    assert VirtualKey.objects.filter(key_alias="real").exists()


@pytest.mark.parametrize("body", [{}, {"keys": []}, {"key_aliases": []}, {"keys": [], "key_aliases": []}])
def test_delete_needs_keys_or_aliases(api, make_key, body):
    make_key()
    assert_error(api.post("/key/delete", body), 400, "invalid_field", param="keys")
    assert VirtualKey.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"keys": "sk-abc"}, "keys"),
        ({"keys": [1]}, "keys"),
        ({"key_aliases": "a"}, "key_aliases"),
        ({"key": "x"}, "key"),
    ],
)
def test_delete_rejects_wrong_types_and_unknown_fields(api, make_key, body, param):
    make_key()
    error = assert_error(api.post("/key/delete", body), 400, "invalid_field")
    assert error["param"] == param or error["param"].startswith(param + "."), error
    assert VirtualKey.objects.count() == 1


# --- /key/block and /key/unblock ----------------------------------------------------------------------------------
def test_block_then_unblock_takes_effect_immediately(api, guide_routes, make_key):
    row, plaintext = make_key(key_alias="blockme")
    assert_chat_works(api, plaintext)

    response = api.post("/key/block", {"key": plaintext})
    assert response.status_code == 200, response.content
    assert response.data["blocked"] is True
    assert response.data["token"] == row.key_hash
    assert "key" not in response.data
    error = assert_error(chat(api, plaintext), 401, "blocked_key")
    assert "blockme" in error["message"] and plaintext not in error["message"]
    assert_error(api.get("/v1/models", key=plaintext), 401, "blocked_key")

    response = api.post("/key/unblock", {"key": plaintext})
    assert response.status_code == 200, response.content
    assert response.data["blocked"] is False
    assert_chat_works(api, plaintext)
    row.refresh_from_db()
    assert row.blocked is False


def test_block_by_token(api, guide_routes, make_key):
    row, plaintext = make_key()
    assert api.post("/key/block", {"key": row.key_hash}).status_code == 200
    row.refresh_from_db()
    assert row.blocked is True
    assert_error(chat(api, plaintext), 401, "blocked_key")
    assert api.post("/key/unblock", {"key": row.key_hash}).status_code == 200
    assert_chat_works(api, plaintext)


def test_block_is_idempotent(api, make_key):
    row, plaintext = make_key(blocked=True)
    response = api.post("/key/block", {"key": plaintext})
    assert response.status_code == 200, response.content
    assert response.data["blocked"] is True
    for _ in range(2):
        response = api.post("/key/unblock", {"key": plaintext})
        assert response.status_code == 200, response.content
        assert response.data["blocked"] is False
    row.refresh_from_db()
    assert row.blocked is False


def test_a_key_generated_blocked_is_refused_until_unblocked(api, guide_routes):
    plaintext = api.post("/key/generate", {"blocked": True}).data["key"]
    assert_error(chat(api, plaintext), 401, "blocked_key")
    assert api.post("/key/unblock", {"key": plaintext}).status_code == 200
    assert_chat_works(api, plaintext)


@pytest.mark.parametrize("path", ["/key/block", "/key/unblock"])
def test_block_of_an_unknown_key_is_not_found(api, path):
    assert_error(api.post(path, {"key": "sk-no-such-key-000000000000"}), 404, "not_found", param="key")


@pytest.mark.parametrize("path", ["/key/block", "/key/unblock"])
@pytest.mark.parametrize(
    ("body", "param"),
    [({}, "key"), ({"key": 5}, "key"), ({"key": ""}, "key"), ({"key": "sk-x", "blocked": True}, "blocked")],
)
def test_block_rejects_bad_bodies(api, make_key, path, body, param):
    row, _ = make_key()
    assert_error(api.post(path, body), 400, "invalid_field", param=param)
    row.refresh_from_db()
    assert row.blocked is False


# --- /key/regenerate ----------------------------------------------------------------------------------------------
def test_regenerate_issues_a_new_key_and_retires_the_old_one(api, guide_routes, make_key):
    row, old = make_key(key_alias="rotate-me", models=["mock-gpt"], max_budget=4.0)
    assert_chat_works(api, old)

    response = api.post("/key/regenerate", {"key": old})
    assert response.status_code == 200, response.content
    new = response.data["key"]
    assert new != old
    assert re.fullmatch(r"sk-[A-Za-z0-9_-]{22,}", new)
    assert response.data["token"] == hashlib.sha256(new.encode()).hexdigest()
    assert response.data["key_name"] == "sk-..." + new[-4:]
    # same settings, new secret
    assert (response.data["key_alias"], response.data["models"], response.data["max_budget"]) == (
        "rotate-me",
        ["mock-gpt"],
        4.0,
    )

    assert_error(chat(api, old), 401, "invalid_api_key")
    assert_chat_works(api, new)
    row.refresh_from_db()
    assert row.key_hash == hashlib.sha256(new.encode()).hexdigest()
    assert new[3:] not in repr(VirtualKey.objects.values().get(pk=row.pk))


def test_regenerate_by_token(api, guide_routes, make_key):
    row, old = make_key()
    response = api.post("/key/regenerate", {"key": row.key_hash})
    assert response.status_code == 200, response.content
    assert_error(chat(api, old), 401, "invalid_api_key")
    assert_chat_works(api, response.data["key"])
    # the old token no longer names the key
    assert_error(api.get("/key/info", {"key": row.key_hash}), 404, "not_found", param="key")


def test_regenerate_of_an_unknown_key_is_not_found(api):
    assert_error(api.post("/key/regenerate", {"key": "sk-no-such-key-000000000000"}), 404, "not_found", param="key")


@pytest.mark.parametrize(
    ("body", "param"), [({}, "key"), ({"key": ["sk-x"]}, "key"), ({"key": "sk-x", "new_key": "sk-y"}, "new_key")]
)
def test_regenerate_rejects_bad_bodies(api, make_key, body, param):
    row, _ = make_key()
    assert_error(api.post("/key/regenerate", body), 400, "invalid_field", param=param)
    old_hash = row.key_hash
    row.refresh_from_db()
    assert row.key_hash == old_hash
