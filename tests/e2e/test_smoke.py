import openai
import pytest

from tests.e2e.conftest import E2E_MASTER_KEY

pytestmark = pytest.mark.e2e


def test_master_key_calls_a_model_through_the_openai_sdk(gateway, e2e_upstream):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=E2E_MASTER_KEY)
    reply = client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "echo: hi"
    assert e2e_upstream.last["body"]["model"] == "fake"
    assert e2e_upstream.last["headers"]["Authorization"] == "Bearer fake-key"
