from __future__ import annotations

from django.db import models


class RequestLog(models.Model):
    """One row per chat-completions request that got past authentication: who, what, where, what it cost.

    Written by a background writer in batches, off the request path. Keys and teams are copied as text so a row
    outlives the key it describes. Bodies are kept only when MODELGATE_LOG_BODIES is on.
    """

    request_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_index=True)
    key_hash = models.CharField(max_length=64, blank=True, default="")
    key_name = models.CharField(max_length=200, blank=True, default="", help_text="Alias, else the key preview.")
    team_id = models.CharField(max_length=128, blank=True, default="")
    requested_model = models.CharField(max_length=255)
    route = models.CharField(max_length=255, blank=True, default="")
    deployment = models.CharField(max_length=255, blank=True, default="")
    upstream_model = models.CharField(max_length=255, blank=True, default="")
    stream = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    usage_source = models.CharField(
        max_length=12, blank=True, default="", help_text="upstream: usage as reported; counted: estimated by us."
    )
    cost = models.FloatField(default=0.0)
    latency_ms = models.FloatField(default=0.0, help_text="From request arrival to the last byte sent.")
    upstream_latency_ms = models.FloatField(null=True, blank=True, help_text="Time spent waiting on the upstream.")
    request_body = models.JSONField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # Every index is written for every request: only those the log's readers use (/spend/logs by key, team,
        # model or request id, newest first; the console by time; the admin's filters on failures). A unique
        # constraint, not unique=True, which on PostgreSQL adds a second index for LIKE queries no one makes. Partial
        # indexes for the failures: a successful request's row is not in them.
        constraints = [models.UniqueConstraint(fields=["request_id"], name="requestlog_request_id_unique")]
        indexes = [
            models.Index(fields=["key_hash", "created_at"]),
            models.Index(fields=["team_id", "created_at"]),
            models.Index(fields=["requested_model", "created_at"], name="requestlog_model_time"),
            models.Index(
                fields=["status", "created_at"], name="requestlog_failed_time", condition=models.Q(status__gte=400)
            ),
            models.Index(
                fields=["error_code", "created_at"], name="requestlog_error_time", condition=~models.Q(error_code="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.key_name} {self.requested_model} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Counter(models.Model):
    """A shared counter for budgets and rate limits when no Redis is configured (REDIS_URL unset).

    Names carry their window or budget period, so a new window is a new row; expired rows are swept in the
    background. Updated only with atomic SQL (`value = value + x`), never read-modify-write in Python.
    """

    name = models.CharField(max_length=200, primary_key=True)
    value = models.FloatField(default=0.0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"
