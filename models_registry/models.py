from __future__ import annotations

from django.db import models

from models_registry.providers import split_provider


class AccessGroup(models.Model):
    """A name put on deployments; granting it to a key or team grants every route whose deployments carry it."""

    name = models.CharField(max_length=200, unique=True, help_text="The name keys and teams list in their models.")
    description = models.TextField(blank=True, default="")
    from_config = models.BooleanField(
        default=False, help_text="Created by a config load; removed by a later load once no deployment carries it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Deployment(models.Model):
    """One upstream that serves a public model name: provider model, api_base, key, options, prices, access groups.

    Several deployments may share a `model_name` (the relay balances between them). A `model_name` containing `*` is a
    wildcard route (SPEC §2). Rows with `source="config"` are owned by the config file: the next load overwrites them.
    """

    SOURCE_CONFIG = "config"
    SOURCE_ADMIN = "admin"
    SOURCE_CHOICES = [(SOURCE_CONFIG, "config file"), (SOURCE_ADMIN, "admin / API")]

    model_name = models.CharField(
        max_length=255, db_index=True, help_text="Public name clients ask for; may be a wildcard such as openai/*."
    )
    litellm_model = models.CharField(
        max_length=255, help_text="Provider and model, LiteLLM style: openai/gpt-4o, azure/my-deployment, mock/echo."
    )
    api_base = models.CharField(max_length=500, blank=True, default="")
    api_key = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Kept as given: os.environ/NAME is read from the environment at call time, never stored resolved.",
    )
    api_version = models.CharField(max_length=50, blank=True, default="")
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds to wait for the upstream.")
    weight = models.FloatField(default=1.0, help_text="Relative share of the route's traffic.")
    rpm = models.PositiveIntegerField(null=True, blank=True)
    tpm = models.PositiveIntegerField(null=True, blank=True)
    input_cost_per_token = models.FloatField(null=True, blank=True)
    output_cost_per_token = models.FloatField(null=True, blank=True)
    mock_response = models.TextField(
        null=True, blank=True, help_text="Answer locally with this text instead of calling the upstream."
    )
    model_info = models.JSONField(default=dict, blank=True, help_text="Other model_info keys from the config.")
    access_groups = models.ManyToManyField(AccessGroup, blank=True, related_name="deployments")
    source = models.CharField(max_length=10, choices=SOURCE_CHOICES, default=SOURCE_ADMIN)
    config_key = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        unique=True,
        help_text="Identity of a config-managed row: model_info.id, else model_name#ordinal.",
    )
    position = models.IntegerField(
        default=1_000_000, help_text="Order in the config; rows added in admin come after config rows."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.model_name} -> {self.litellm_model}"

    @property
    def provider(self) -> str:
        return split_provider(self.litellm_model).provider

    @property
    def is_wildcard(self) -> bool:
        return "*" in self.model_name

    @property
    def deployment_id(self) -> str:
        return self.config_key or str(self.pk)
