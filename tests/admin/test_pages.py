"""Every page of the operator console renders with seeded data and shows what it is for."""

from __future__ import annotations

import re

import pytest
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from accounts.models import VirtualKey
from gateway.models import RequestLog
from tests.admin.conftest import deployment, group, key, team

pytestmark = pytest.mark.django_db


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def test_admin_needs_a_login(client, seeded):
    response = client.get("/admin/accounts/virtualkey/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_index_shows_spend_at_a_glance_with_a_chart(admin_client, seeded):
    html = page(admin_client, "/admin/")
    assert "modelgate operator console" in html
    assert "Spend at a glance" in html
    month_requests = RequestLog.objects.count()  # seeded over 21 days: some may fall in last month
    shown = int(re.search(r'id="mg-requests-month">(\d+)<', html).group(1))
    assert 0 < shown <= month_requests
    today = int(re.search(r'id="mg-requests-today">(\d+)<', html).group(1))
    assert today >= 1  # seed_demo puts a twentieth of the rows in today's hours
    assert html.count('class="mg-bar-ok"') == 14  # one bar per day of the chart
    assert '<polyline class="mg-line-spend"' in html
    top_keys = html[html.index('id="mg-top-keys"') :]
    assert "research-" in top_keys or "helpdesk-bot" in top_keys
    assert 'id="mg-top-models"' in html and "mock-gpt" in html
    # The most frequent failure of the month is listed (which one depends on the day: the rows span 21 days).
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    failures = RequestLog.objects.filter(created_at__gte=month_start, status__gte=400)
    most = failures.values("error_code").annotate(n=Count("id")).order_by("-n").first()
    assert 'id="mg-errors"' in html
    if most is not None:  # early on the 1st of a month, none of the seeded failures may fall in it
        assert f">{most['error_code']}<" in html
    assert "cdn" not in html.lower()


def test_index_with_no_traffic_says_so(admin_client, db):
    html = page(admin_client, "/admin/")
    assert 'id="mg-requests-today">0<' in html
    assert "No requests this month yet." in html
    assert "No errors this month." in html


def test_key_list_shows_status_spend_and_team(admin_client, seeded):
    html = page(admin_client, "/admin/accounts/virtualkey/")
    for alias in ("research-notebooks", "helpdesk-bot", "o1-experiments", "old-prototype", "demo-laptop"):
        assert alias in html
    assert key("helpdesk-bot").key_preview in html
    for label in ("mg-badge-active", "mg-badge-blocked", "mg-badge-expired", "mg-badge-team-blocked"):
        assert label in html
    assert "mg-gauge-over" in html  # research-ci is over its budget
    assert "/ no budget" in html
    assert "restricted-models" in html  # allowed models as chips


@pytest.mark.parametrize(
    ("query", "present", "absent"),
    [
        ("status=blocked", ["old-prototype"], ["helpdesk-bot", "contractor-acme"]),
        ("status=expired", ["demo-laptop"], ["helpdesk-bot"]),
        ("status=team-blocked", ["contractor-acme"], ["old-prototype"]),
        ("status=active", ["helpdesk-bot", "research-ci"], ["old-prototype", "demo-laptop", "contractor-acme"]),
        ("model=openai/o1-*", ["o1-experiments", "platform-tools"], ["helpdesk-bot", "research-ci"]),
        ("model=azure-gpt-3.5", ["dev-sandbox", "platform-tools"], ["research-notebooks", "helpdesk-bot"]),
        ("q=helpdesk", ["helpdesk-bot"], ["faq-summarizer"]),
    ],
)
def test_key_list_filters_and_search(admin_client, seeded, query, present, absent):
    html = page(admin_client, f"/admin/accounts/virtualkey/?{query}")
    rows = html[html.index('id="result_list"') :]
    for alias in present:
        assert f">{alias}<" in rows, (query, alias)
    for alias in absent:
        assert f">{alias}<" not in rows, (query, alias)


def test_key_list_filters_by_team(admin_client, seeded):
    support = team("support-bots")
    html = page(admin_client, f"/admin/accounts/virtualkey/?team__team_id__exact={support.team_id}")
    rows = html[html.index('id="result_list"') :]
    assert ">helpdesk-bot<" in rows and ">faq-summarizer<" in rows
    assert ">research-ci<" not in rows


def test_key_add_page_offers_the_real_choices(admin_client, seeded):
    html = page(admin_client, "/admin/accounts/virtualkey/add/")
    for value in ("all-team-models", "all-proxy-models", "beta-models", "default-models", "self-hosted", "gpt-4o",
                  "openai/*", "openai/o1-*", "local-llama"):  # fmt: skip
        assert f'value="{value}"' in html, value
    assert "beta-models  (mock-gpt, gpt-4, fireworks-llama-v3-70b-instruct)" in html
    assert 'name="duration"' in html
    assert 'name="key_hash"' not in html


def test_key_change_page_shows_who_can_call(admin_client, seeded):
    row = key("research-ci")
    html = page(admin_client, f"/admin/accounts/virtualkey/{row.pk}/change/")
    callable_list = html[html.index('id="callable-models"') : html.index("</ul>", html.index('id="callable-models"'))]
    assert re.findall(r'mg-chip mg-chip-ok">([^<]+)<', callable_list) == [
        "mock-gpt",
        "gpt-4",
        "fireworks-llama-v3-70b-instruct",
    ]
    assert 'id="try-it"' in html
    assert "Regenerate secret" in html
    assert row.key_hash in html  # the hash is shown (read-only); the plaintext is never stored to show


def test_blocked_key_page_says_every_call_fails(admin_client, seeded):
    html = page(admin_client, f"/admin/accounts/virtualkey/{key('old-prototype').pk}/change/")
    assert 'id="key-status-error"' in html
    assert "401 blocked_key" in html


def test_team_list_shows_key_counts_and_spend(admin_client, seeded):
    html = page(admin_client, "/admin/accounts/team/")
    research = team("ml-research")
    assert f'?team__team_id__exact={research.team_id}">3</a>' in html
    assert "$500.00" in html
    assert "mg-badge-blocked" in html  # contractors


def test_team_change_page_has_read_only_key_inline_and_picker(admin_client, seeded):
    research = team("ml-research")
    html = page(admin_client, f"/admin/accounts/team/{research.pk}/change/")
    for alias in ("research-notebooks", "research-ci", "eval-harness"):
        assert f'/admin/accounts/virtualkey/{key(alias).pk}/change/">{alias}</a>' in html
    assert 'name="keys-0-key_alias"' not in html  # read-only inline
    assert "Add a key to this team" in html and f"?team={research.pk}" in html
    assert 'value="beta-models" class="mg-grant-list" id="id_models_0_1_0" checked' in html
    assert 'value="all-team-models"' not in html  # a key-only special
    assert 'id="team-callable-models"' in html


def test_team_delete_page_states_the_rule_and_offers_deleting_keys(admin_client, seeded):
    html = page(admin_client, f"/admin/accounts/team/{team('ml-research').pk}/delete/")
    assert "still has 3 keys" in html
    assert "SPEC §4" in html
    assert 'name="delete_keys" value="yes"' in html
    assert "Delete the team and its 3 keys" in html


def test_deployment_list_shows_key_resolution_without_secrets(admin_client, seeded, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-real-secret-value")
    monkeypatch.delenv("FIREWORKS", raising=False)
    html = page(admin_client, "/admin/models_registry/deployment/")
    assert "sk-openai-real-secret-value" not in html
    assert 'os.environ/OPENAI_API_KEY</code> <span class="mg-quiet">set</span>' in html
    assert 'os.environ/FIREWORKS</code> <span class="mg-bad">not set</span>' in html
    assert "mg-badge-config" in html and "mg-badge-admin" in html  # config rows and the hand-made local-llama
    assert "hosted_vllm" in html and "http://gpu-01.internal:8000/v1" in html
    assert f'/admin/models_registry/accessgroup/{group("beta-models").pk}/change/">beta-models</a>' in html


def test_config_deployment_page_warns_and_lists_who_can_reach(admin_client, seeded):
    html = page(admin_client, f"/admin/models_registry/deployment/{deployment('gpt-4').pk}/change/")
    assert 'id="config-managed"' in html
    assert "next config load" in html and "overwrites" in html
    reach = html[html.index('id="reach-keys"') : html.index("</ul>", html.index('id="reach-keys"'))]
    assert ">research-ci<" in reach and ">research-notebooks<" in reach
    assert ">helpdesk-bot<" not in reach and ">eval-harness<" not in reach
    teams = html[html.index('id="reach-teams"') : html.index("</ul>", html.index('id="reach-teams"'))]
    assert ">ml-research<" in teams and ">platform<" in teams and ">support-bots<" not in teams


def test_admin_made_deployment_has_no_config_warning(admin_client, seeded):
    html = page(admin_client, f"/admin/models_registry/deployment/{deployment('local-llama').pk}/change/")
    assert 'id="config-managed"' not in html
    assert ">batch-embeddings<" in html


def test_access_group_pages_show_members_and_users(admin_client, seeded):
    html = page(admin_client, "/admin/models_registry/accessgroup/")
    assert "beta-models" in html and "restricted-models" in html
    assert "1 key(s), 1 team(s)" in html  # beta-models: research-ci and team ml-research
    html = page(admin_client, f"/admin/models_registry/accessgroup/{group('beta-models').pk}/change/")
    members = html[html.index('id="group-deployments"') :]
    for model in ("mock-gpt", "gpt-4", "fireworks-llama-v3-70b-instruct"):
        assert f">{model}</a>" in members
    assert ">research-ci</a>" in html[html.index('id="group-keys"') :]
    assert ">ml-research</a>" in html[html.index('id="group-teams"') :]


def test_request_log_links_keys(admin_client, seeded):
    html = page(admin_client, "/admin/gateway/requestlog/")
    row = VirtualKey.objects.get(key_alias="helpdesk-bot")
    assert f'/admin/accounts/virtualkey/{row.pk}/change/">helpdesk-bot</a>' in html
    html = page(admin_client, "/admin/gateway/requestlog/?status__gte=400")
    assert "rate_limit_exceeded" in html


def test_static_files_are_served_without_collectstatic(client, db):
    for path in ("/static/admin/css/base.css", "/static/modelgate/admin.css", "/static/modelgate/admin.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert len(body) > 100
    assert reverse("admin:index") == "/admin/"
