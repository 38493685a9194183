"""GET /key/list: tokens by default, full objects on request, paginated, filtered by team or alias."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_keys(make_team, make_key):
    make_team(team_id="red")
    make_team(team_id="blue")
    keys = []
    for index in range(5):
        team = "red" if index % 2 == 0 else "blue"
        keys.append(make_key(team_id=team, key_alias=f"key-{index}"))
    return keys  # [(row, plaintext)], in creation order: red, blue, red, blue, red


def test_it_lists_tokens_by_default(api, five_keys):
    response = api.get("/key/list")
    assert response.status_code == 200, response.content
    assert response.data == {
        "keys": [row.key_hash for row, _ in five_keys],
        "total_count": 5,
        "current_page": 1,
        "total_pages": 1,
    }
    body = response.content.decode()
    for _, plaintext in five_keys:
        assert plaintext[3:] not in body


def test_it_paginates(api, five_keys):
    hashes = [row.key_hash for row, _ in five_keys]
    pages = [api.get("/key/list", {"page": page, "size": 2}) for page in (1, 2, 3, 4)]
    for page in pages:
        assert page.status_code == 200, page.content
        assert (page.data["total_count"], page.data["total_pages"]) == (5, 3)
    assert [page.data["current_page"] for page in pages] == [1, 2, 3, 4]
    assert [page.data["keys"] for page in pages] == [hashes[0:2], hashes[2:4], hashes[4:5], []]


def test_an_empty_gateway_has_one_empty_page(api, db):
    response = api.get("/key/list")
    assert response.status_code == 200, response.content
    assert response.data == {"keys": [], "total_count": 0, "current_page": 1, "total_pages": 1}


def test_it_filters_by_team_id(api, five_keys):
    response = api.get("/key/list", {"team_id": "blue"})
    assert response.status_code == 200, response.content
    assert response.data["keys"] == [five_keys[1][0].key_hash, five_keys[3][0].key_hash]
    assert response.data["total_count"] == 2
    paged = api.get("/key/list", {"team_id": "red", "size": 2, "page": 2})
    assert paged.data["keys"] == [five_keys[4][0].key_hash]
    assert (paged.data["total_count"], paged.data["total_pages"]) == (3, 2)


def test_a_team_without_keys_lists_nothing(api, five_keys, make_team):
    make_team(team_id="green")
    response = api.get("/key/list", {"team_id": "green"})
    assert response.status_code == 200, response.content
    assert (response.data["keys"], response.data["total_count"]) == ([], 0)


def test_it_filters_by_key_alias(api, five_keys):
    response = api.get("/key/list", {"key_alias": "key-3"})
    assert response.status_code == 200, response.content
    assert response.data["keys"] == [five_keys[3][0].key_hash]


@pytest.mark.parametrize("flag", ["true", "True", "1"])
def test_return_full_object_gives_key_details_without_plaintext(api, five_keys, flag):
    response = api.get("/key/list", {"return_full_object": flag, "team_id": "red"})
    assert response.status_code == 200, response.content
    keys = response.data["keys"]
    assert [key["key_alias"] for key in keys] == ["key-0", "key-2", "key-4"]
    assert [key["token"] for key in keys] == [five_keys[i][0].key_hash for i in (0, 2, 4)]
    assert all(key["team_id"] == "red" for key in keys)
    assert all("key" not in key for key in keys)
    assert all(key["key_name"].startswith("sk-...") for key in keys)
    body = response.content.decode()
    for _, plaintext in five_keys:
        assert plaintext[3:] not in body


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"size": "0"}, "size"),
        ({"size": "1001"}, "size"),
        ({"size": "many"}, "size"),
        ({"return_full_object": "maybe"}, "return_full_object"),
    ],
)
def test_it_rejects_bad_query_parameters(api, five_keys, params, param):
    error = assert_error(api.get("/key/list", params), 400, "invalid_field", param=param)
    assert param in error["message"]
