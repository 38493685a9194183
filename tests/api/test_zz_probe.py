import json
import pytest

pytestmark = pytest.mark.django_db

def show(r):
    print(r.status_code, r.content[:300])

def test_probe(api, client, guide_routes, make_team):
    try:
        show(api.post("/key/generate", {"models": [1]}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"team_id": "nope"}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", raw="[1,2]"))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", raw='{"max_budget": NaN}'))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", raw='{"max_budget": Infinity}'))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"rpm_limit": 10**20}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"rpm_limit": 2**40}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"duration": "999999999d"}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"duration": "99999999999999d"}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"duration": "999999mo"}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"budget_duration": "00000000000000000000000001d"}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"duration": ""}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"key_alias": ""}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(client.post("/key/generate", data='{"key_alias": "form"}', content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION="Bearer sk-master-test-0123456789"))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(client.post("/key/generate", data='{"key_alias": "plain"}', content_type="text/plain", HTTP_AUTHORIZATION="Bearer sk-master-test-0123456789"))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(client.generic("POST", "/key/generate", '{"key_alias": "none"}', content_type="", HTTP_AUTHORIZATION="Bearer sk-master-test-0123456789"))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.get("/key/generate"))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", raw=b'\xff\xfe'))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/team/new", {"team_id": ""}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/team/delete", {"team_ids": ["x"]}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.get("/key/info", {"key": "zz"}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
    try:
        show(api.post("/key/generate", {"metadata": {"a": float("nan")}}))
    except Exception as e:
        print('EXC', type(e).__name__, e)
