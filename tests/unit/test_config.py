"""Loading LiteLLM's config.yaml (SPEC §7): parse errors, warnings, idempotent loads, hand-made rows, master key."""

from __future__ import annotations

import io
import textwrap

import pytest
from django.core.management import CommandError, call_command

from models_registry.config import ConfigError, load_config, parse_config, read_master_key
from models_registry.models import AccessGroup, Deployment
from tests.conftest import guide_config


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def parse_error(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config(yaml_text(text), source="my.yaml")
    return str(raised.value)


def config_rows() -> dict[str, Deployment]:
    return {row.config_key: row for row in Deployment.objects.filter(source=Deployment.SOURCE_CONFIG)}


# --- parse errors name the entry and the field ---------------------------------------------------------------------
def test_it_rejects_an_entry_without_model_name():
    message = parse_error(
        """
        model_list:
          - model_name: ok
            litellm_params: {model: openai/gpt-4o}
          - litellm_params: {model: openai/gpt-4o}
        """
    )

    assert message.startswith("my.yaml: model_list[1]")
    assert "'model_name' is missing" in message


def test_it_rejects_litellm_params_that_is_not_a_mapping():
    message = parse_error(
        """
        model_list:
          - model_name: gpt-4
            litellm_params: openai/gpt-4
        """
    )

    assert "model_list[0] (model_name 'gpt-4')" in message
    assert "'litellm_params' must be a mapping" in message


def test_it_rejects_missing_litellm_params():
    message = parse_error("model_list:\n  - model_name: gpt-4\n")

    assert "model_list[0] (model_name 'gpt-4')" in message
    assert "'litellm_params' is missing" in message


def test_it_rejects_litellm_params_without_model():
    message = parse_error(
        """
        model_list:
          - model_name: gpt-4
            litellm_params: {api_key: sk-x}
        """
    )

    assert "model_list[0] (model_name 'gpt-4')" in message
    assert "'litellm_params.model' is missing" in message


@pytest.mark.parametrize(
    "params, info, field",
    [
        ("{model: openai/x, rpm: ten}", "{}", "litellm_params.rpm"),
        ("{model: openai/x, rpm: 1.5}", "{}", "litellm_params.rpm"),
        ("{model: openai/x, rpm: -1}", "{}", "litellm_params.rpm"),
        ("{model: openai/x, tpm: true}", "{}", "litellm_params.tpm"),
        ("{model: openai/x, timeout: soon}", "{}", "litellm_params.timeout"),
        ("{model: openai/x, timeout: [30]}", "{}", "litellm_params.timeout"),
        ("{model: openai/x, timeout: 0}", "{}", "litellm_params.timeout"),
        ("{model: openai/x, weight: heavy}", "{}", "litellm_params.weight"),
        ("{model: openai/x, input_cost_per_token: free}", "{}", "litellm_params.input_cost_per_token"),
        ("{model: openai/x}", "{output_cost_per_token: cheap}", "model_info.output_cost_per_token"),
        ("{model: openai/x}", "{access_groups: beta-models}", "model_info.access_groups"),
        ("{model: openai/x}", "{access_groups: [beta, 3]}", "model_info.access_groups"),
        ("{model: openai/x}", "{access_groups: ['']}", "model_info.access_groups"),
        ("{model: openai/x}", "{id: [1]}", "model_info.id"),
        ("{model: openai/x, api_key: 123}", "{}", "litellm_params.api_key"),
        ("{model: openai/x, api_base: [a]}", "{}", "litellm_params.api_base"),
        ("{model: openai/x, mock_response: 42}", "{}", "litellm_params.mock_response"),
        ("{model: 42}", "{}", "litellm_params.model"),
        ("{model: openai/x}", "[1]", "model_info"),
    ],
)
def test_it_rejects_wrong_types_naming_entry_and_field(params, info, field):
    message = parse_error(
        f"""
        model_list:
          - model_name: first
            litellm_params: {{model: openai/first}}
          - model_name: second
            litellm_params: {params}
            model_info: {info}
        """
    )

    assert "my.yaml: model_list[1] (model_name 'second')" in message
    assert f"'{field}'" in message


def test_it_rejects_a_model_name_that_is_not_a_string():
    message = parse_error(
        """
        model_list:
          - model_name: 42
            litellm_params: {model: openai/x}
        """
    )

    assert "model_list[0]" in message
    assert "'model_name' must be a non-empty string" in message


def test_it_accepts_quoted_prices_and_numbers():
    parsed = parse_config(
        yaml_text(
            """
            model_list:
              - model_name: gpt-4
                litellm_params: {model: openai/gpt-4, input_cost_per_token: "0.000002", rpm: 10, timeout: 30}
                model_info: {output_cost_per_token: 0.000004}
            """
        )
    )

    (item,) = parsed.deployments
    assert (item.input_cost_per_token, item.output_cost_per_token) == (0.000002, 0.000004)
    assert (item.rpm, item.timeout) == (10, 30.0)


def test_it_rejects_malformed_yaml():
    message = parse_error("model_list:\n  - model_name: [unclosed\n")

    assert message.startswith("my.yaml: not valid YAML")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("- just\n- a list\n", "top level must be a mapping"),
        ("model_list: {model_name: x}\n", "'model_list' must be a list"),
        ("model_list:\n  - just-a-string\n", "model_list[0] must be a mapping"),
        ("general_settings: [master_key]\n", "'general_settings' must be a mapping"),
        ("general_settings: {master_key: 12}\n", "general_settings.master_key must be a non-empty string"),
        ("router_settings: fast\n", "'router_settings' must be a mapping"),
    ],
)
def test_it_rejects_malformed_sections(text, fragment):
    assert fragment in parse_error(text)


def test_it_rejects_duplicate_model_info_ids():
    message = parse_error(
        """
        model_list:
          - model_name: gpt-4
            litellm_params: {model: openai/gpt-4}
            model_info: {id: east}
          - model_name: gpt-4o
            litellm_params: {model: openai/gpt-4o}
          - model_name: gpt-4
            litellm_params: {model: azure/gpt-4, api_base: "https://x.example"}
            model_info: {id: east}
        """
    )

    assert "model_list[2]" in message
    assert "model_info.id 'east'" in message
    assert "model_list[0]" in message


def test_it_rejects_an_unknown_provider_without_api_base():
    message = parse_error(
        """
        model_list:
          - model_name: in-house
            litellm_params: {model: acme/llama-3}
        """
    )

    assert "model_list[0] (model_name 'in-house')" in message
    assert "'litellm_params.api_base'" in message
    assert "'acme'" in message


def test_it_accepts_an_unknown_provider_with_api_base():
    parsed = parse_config(
        yaml_text(
            """
            model_list:
              - model_name: in-house
                litellm_params: {model: acme/llama-3, api_base: "http://10.0.0.5:8000/v1"}
            """
        )
    )

    assert parsed.deployments[0].api_base == "http://10.0.0.5:8000/v1"
    assert parsed.warnings == []


def test_entries_sharing_a_model_name_get_ordinal_keys_and_ids_are_kept():
    parsed = parse_config(
        yaml_text(
            """
            model_list:
              - model_name: gpt-4
                litellm_params: {model: openai/gpt-4}
              - model_name: gpt-4
                litellm_params: {model: openai/gpt-4-0613}
              - model_name: gpt-4
                litellm_params: {model: openai/gpt-4-0314}
                model_info: {id: 7}
            """
        )
    )

    assert [d.config_key for d in parsed.deployments] == ["gpt-4#0", "gpt-4#1", "7"]


# --- unsupported settings are reported, never silently ignored -----------------------------------------------------
def test_unsupported_settings_come_back_as_warnings_listing_them():
    parsed = parse_config(
        yaml_text(
            """
            model_list:
              - model_name: gpt-4
                litellm_params: {model: openai/gpt-4, max_retries: 3, stream_timeout: 10, rpm: 5}
            router_settings: {routing_strategy: usage-based-routing, num_retries: 2}
            litellm_settings: {drop_params: true}
            general_settings: {master_key: sk-1234, database_url: "postgres://x", alerting: [slack]}
            """
        ),
        source="my.yaml",
    )

    text = "\n".join(parsed.warnings)
    assert "router_settings" in text and "routing_strategy" in text and "num_retries" in text
    assert "litellm_settings" in text and "drop_params" in text
    assert "model_list[0] (model_name 'gpt-4')" in text
    assert "max_retries" in text and "stream_timeout" in text
    assert "database_url" in text and "alerting" in text
    assert "master_key" not in text  # the supported setting is not reported
    assert "rpm" not in text
    assert len(parsed.warnings) == 4
    assert parsed.master_key == "sk-1234"


def test_unknown_top_level_sections_and_entry_keys_are_reported():
    parsed = parse_config(
        yaml_text(
            """
            model_list:
              - model_name: gpt-4
                litellm_params: {model: openai/gpt-4}
                tpm: 100
            callbacks: [langfuse]
            """
        )
    )

    text = "\n".join(parsed.warnings)
    assert "'callbacks'" in text
    assert "'tpm'" in text


def test_non_openai_provider_loads_with_a_warning():
    parsed = parse_config(
        yaml_text(
            """
            model_list:
              - model_name: claude
                litellm_params: {model: bedrock/anthropic.claude-3}
            """
        )
    )

    assert len(parsed.deployments) == 1
    assert "'bedrock'" in parsed.warnings[0]


def test_a_clean_config_has_no_warnings():
    assert parse_config(guide_config()).warnings == []


def test_load_report_carries_the_warnings(load_config_text):
    report = load_config_text(
        yaml_text(
            """
            model_list:
              - model_name: gpt-4
                litellm_params: {model: openai/gpt-4}
            litellm_settings: {set_verbose: true}
            """
        )
    )

    assert any("set_verbose" in w for w in report.warnings)
    assert report.created == ["gpt-4 (gpt-4#0)"]


# --- loading into the database -------------------------------------------------------------------------------------
def test_loading_the_guide_creates_one_row_per_entry(load_config_text):
    report = load_config_text(guide_config())

    rows = config_rows()
    assert len(report.created) == 8
    assert set(rows) == {
        "gpt-3.5-turbo#0",
        "gpt-4#0",
        "gpt-4o#0",
        "azure-gpt-3.5#0",
        "fireworks-llama-v3-70b-instruct#0",
        "openai/*#0",
        "openai/o1-*#0",
        "mock-gpt#0",
    }
    assert rows["azure-gpt-3.5#0"].api_version == "2024-10-21"
    assert rows["gpt-4#0"].litellm_model == "openai/fake"
    assert [r.model_name for r in Deployment.objects.all()][:2] == ["gpt-3.5-turbo", "gpt-4"]  # config order


def test_loading_the_same_text_twice_changes_nothing(load_config_text):
    text = guide_config() + (
        "  - model_name: priced\n"
        "    litellm_params:\n"
        "      {model: openai/priced, input_cost_per_token: '0.0000025', timeout: 12.5, rpm: 60, weight: 2}\n"
        "    model_info:\n"
        "      {id: priced-1, output_cost_per_token: 0.00001, mode: chat, access_groups: [beta-models, paid]}\n"
    )
    first = load_config_text(text)
    before = {row.pk: (row.config_key, row.updated_at) for row in Deployment.objects.all()}
    groups_before = set(AccessGroup.objects.values_list("pk", "name"))

    second = load_config_text(text)

    assert len(first.created) == 9
    assert (second.created, second.updated, second.deleted) == ([], [], [])
    assert sorted(second.unchanged) == sorted(first.created)
    assert not second.changed
    assert second.summary() == "0 created, 0 updated, 0 removed, 9 unchanged"
    assert {row.pk: (row.config_key, row.updated_at) for row in Deployment.objects.all()} == before
    assert set(AccessGroup.objects.values_list("pk", "name")) == groups_before


def test_editing_the_config_updates_in_place_adds_and_removes(load_config_text):
    load_config_text(
        yaml_text(
            """
            model_list:
              - model_name: gpt-4
                litellm_params: {model: openai/gpt-4, api_base: "http://old.example/v1"}
              - model_name: gpt-4o
                litellm_params: {model: openai/gpt-4o}
              - model_name: gone
                litellm_params: {model: openai/gone}
            """
        )
    )
    before = config_rows()

    report = load_config_text(
        yaml_text(
            """
            model_list:
              - model_name: gpt-4
                litellm_params: {model: openai/gpt-4, api_base: "http://new.example/v1"}
              - model_name: gpt-4o
                litellm_params: {model: openai/gpt-4o}
              - model_name: added
                litellm_params: {model: openai/added}
            """
        )
    )

    after = config_rows()
    assert report.updated == ["gpt-4 (gpt-4#0)"]
    assert report.unchanged == ["gpt-4o (gpt-4o#0)"]
    assert report.created == ["added (added#0)"]
    assert report.deleted == ["gone (gone#0)"]
    assert set(after) == {"gpt-4#0", "gpt-4o#0", "added#0"}
    assert after["gpt-4#0"].pk == before["gpt-4#0"].pk
    assert after["gpt-4#0"].api_base == "http://new.example/v1"
    assert after["gpt-4#0"].updated_at > before["gpt-4#0"].updated_at
    assert after["gpt-4o#0"].updated_at == before["gpt-4o#0"].updated_at
    assert not Deployment.objects.filter(pk=before["gone#0"].pk).exists()


def test_a_changed_access_group_alone_counts_as_an_update(load_config_text):
    entry = "model_list:\n  - model_name: gpt-4\n    litellm_params: {model: openai/gpt-4}\n"
    load_config_text(entry + "    model_info: {access_groups: [beta-models]}\n")

    report = load_config_text(entry + "    model_info: {access_groups: [gold]}\n")

    assert report.updated == ["gpt-4 (gpt-4#0)"]
    assert [g.name for g in Deployment.objects.get().access_groups.all()] == ["gold"]


def test_hand_made_deployments_are_never_touched_or_removed(load_config_text):
    hand_made = Deployment.objects.create(
        model_name="gpt-4", litellm_model="openai/gpt-4-hand", api_base="http://hand.example/v1"
    )
    stamp = hand_made.updated_at
    assert hand_made.source == Deployment.SOURCE_ADMIN

    load_config_text(guide_config())
    report = load_config_text("model_list: []\n")

    hand_made.refresh_from_db()
    assert Deployment.objects.count() == 1
    assert len(report.deleted) == 8
    assert (hand_made.litellm_model, hand_made.api_base, hand_made.source) == (
        "openai/gpt-4-hand",
        "http://hand.example/v1",
        Deployment.SOURCE_ADMIN,
    )
    assert hand_made.updated_at == stamp
    assert hand_made.config_key is None


def test_env_api_key_is_stored_as_given_not_resolved(load_config_text, monkeypatch):
    monkeypatch.setenv("FIREWORKS", "fw-secret-from-env")

    load_config_text(guide_config())

    row = config_rows()["fireworks-llama-v3-70b-instruct#0"]
    assert row.api_key == "os.environ/FIREWORKS"
    assert not Deployment.objects.filter(api_key__contains="fw-secret").exists()


def test_env_api_key_loads_even_when_the_variable_is_unset(load_config_text, monkeypatch):
    monkeypatch.delenv("FIREWORKS", raising=False)

    report = load_config_text(guide_config())

    assert "fireworks-llama-v3-70b-instruct (fireworks-llama-v3-70b-instruct#0)" in report.created
    assert config_rows()["fireworks-llama-v3-70b-instruct#0"].api_key == "os.environ/FIREWORKS"


def test_access_groups_come_and_go_with_the_config(load_config_text):
    load_config_text(guide_config())

    groups = {g.name: g for g in AccessGroup.objects.all()}
    assert set(groups) == {"beta-models", "default-models", "restricted-models"}
    assert all(g.from_config for g in groups.values())
    assert sorted(d.model_name for d in groups["beta-models"].deployments.all()) == [
        "fireworks-llama-v3-70b-instruct",
        "gpt-4",
    ]

    load_config_text(
        yaml_text(
            """
            model_list:
              - model_name: gpt-4
                litellm_params: {model: openai/fake}
                model_info: {access_groups: [beta-models]}
            """
        )
    )

    assert list(AccessGroup.objects.values_list("name", flat=True)) == ["beta-models"]
    assert AccessGroup.objects.get().pk == groups["beta-models"].pk


def test_a_hand_made_access_group_survives_config_loads(load_config_text):
    mine = AccessGroup.objects.create(name="beta-models", description="made in admin")

    load_config_text(guide_config())
    load_config_text("model_list: []\n")

    mine.refresh_from_db()
    assert mine.from_config is False
    assert mine.description == "made in admin"


def test_load_config_reads_a_file(db, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(guide_config(), encoding="utf-8")

    report = load_config(path)

    assert len(report.created) == 8
    assert len(config_rows()) == 8


def test_load_config_names_an_unreadable_file(db, tmp_path):
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(missing)


def test_a_bad_config_changes_nothing(load_config_text):
    load_config_text(guide_config())

    with pytest.raises(ConfigError):
        load_config_text("model_list:\n  - model_name: x\n")

    assert len(config_rows()) == 8


# --- master key ----------------------------------------------------------------------------------------------------
def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text(text), encoding="utf-8")
    return path


def test_read_master_key_returns_a_literal(tmp_path):
    path = write(tmp_path, "general_settings:\n  master_key: sk-1234\n")

    assert read_master_key(path) == "sk-1234"


def test_read_master_key_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MG_TEST_MASTER_KEY", "sk-from-env-9876")
    path = write(tmp_path, "general_settings:\n  master_key: os.environ/MG_TEST_MASTER_KEY\n")

    assert read_master_key(path) == "sk-from-env-9876"


def test_read_master_key_names_a_missing_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MG_TEST_MISSING_KEY", raising=False)
    path = write(tmp_path, "general_settings:\n  master_key: os.environ/MG_TEST_MISSING_KEY\n")

    with pytest.raises(ConfigError) as raised:
        read_master_key(path)

    assert "MG_TEST_MISSING_KEY" in str(raised.value)
    assert "master_key" in str(raised.value)


def test_read_master_key_is_none_without_one(tmp_path):
    assert read_master_key(write(tmp_path, "model_list: []\n")) is None


# --- the load_config management command ----------------------------------------------------------------------------
def test_load_config_command_prints_a_summary(db, tmp_path):
    path = write(tmp_path, guide_config() + "router_settings: {routing_strategy: simple-shuffle}\n")
    out, err = io.StringIO(), io.StringIO()

    call_command("load_config", str(path), stdout=out, stderr=err)

    output = out.getvalue()
    assert "created: gpt-4 (gpt-4#0)" in output
    assert f"Loaded {path}: 8 created, 0 updated, 0 removed, 0 unchanged" in output
    assert "routing_strategy" in err.getvalue()
    assert len(config_rows()) == 8


def test_load_config_command_run_twice_reports_unchanged(db, tmp_path):
    path = write(tmp_path, guide_config())
    call_command("load_config", str(path), stdout=io.StringIO())
    out = io.StringIO()

    call_command("load_config", str(path), stdout=out)

    assert "0 created, 0 updated, 0 removed, 8 unchanged" in out.getvalue()
    assert "created:" not in out.getvalue()


def test_load_config_command_fails_on_a_bad_file(db, tmp_path):
    path = write(
        tmp_path,
        """
        model_list:
          - model_name: broken
            litellm_params: {model: openai/x, rpm: lots}
        """,
    )

    with pytest.raises(CommandError) as raised:
        call_command("load_config", str(path), stdout=io.StringIO())

    assert "model_name 'broken'" in str(raised.value)
    assert "litellm_params.rpm" in str(raised.value)
    assert not Deployment.objects.exists()


def test_load_config_command_fails_on_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError, match="missing.yaml"):
        call_command("load_config", str(tmp_path / "missing.yaml"), stdout=io.StringIO())
