"""`manage.py seed_demo`: fill a database with realistic demo data, so that every page of the operator console has
something to show: the example config's deployments and access groups, one deployment made "in the admin", five
teams, a dozen keys in every state (active, blocked, expired, in a blocked team, over budget) and a few hundred
request-log rows spread over the last weeks.

Keys and teams are made through `accounts.services`, like the admin and the API make them. Demo rows are marked
(`metadata.demo`, request ids `demo-...`) so that `--reset` removes exactly them.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from accounts import services
from accounts.access import callable_models, callable_patterns
from accounts.auth import grant_for
from accounts.models import Team, VirtualKey
from gateway.models import RequestLog
from models_registry.config import ConfigError, load_config
from models_registry.models import AccessGroup, Deployment
from models_registry.registry import invalidate_routes, load_route_table

DEMO = {"demo": True}
DEFAULT_CONFIG = Path(settings.BASE_DIR) / "examples" / "config.yaml"

# USD per token (input, output): list prices, so the demo's spend looks like real spend.
PRICES = {
    "mock-gpt": (0.0000005, 0.0000015),
    "gpt-3.5-turbo": (0.0000005, 0.0000015),
    "azure-gpt-3.5": (0.0000005, 0.0000015),
    "gpt-4o": (0.0000025, 0.00001),
    "gpt-4": (0.00003, 0.00006),
    "fireworks-llama-v3-70b-instruct": (0.0000009, 0.0000009),
    "openai/gpt-4.1-mini": (0.0000004, 0.0000016),
    "openai/gpt-4o-mini": (0.00000015, 0.0000006),
    "openai/o1-mini": (0.0000011, 0.0000044),
    "openai/o1-preview": (0.000015, 0.00006),
    "local-llama": (0.0, 0.0),
}
WILDCARD_NAMES = {"openai/*": ["openai/gpt-4.1-mini", "openai/gpt-4o-mini"], "openai/o1-*": ["openai/o1-mini"]}

TEAMS = [
    # alias, models, max_budget, budget_duration, rpm, blocked
    ("ml-research", ["beta-models", "gpt-4o", "default-models"], 500.0, "1mo", 600, False),
    ("litellm-dev", ["azure-gpt-3.5"], 50.0, "1mo", None, False),
    ("support-bots", ["mock-gpt", "gpt-3.5-turbo"], 100.0, "1mo", 300, False),
    ("platform", [], None, None, None, False),
    ("contractors", ["mock-gpt"], 25.0, "1w", 60, True),
]
KEYS = [
    # alias, team, models, max_budget, weight (share of the traffic)
    ("research-notebooks", "ml-research", ["all-team-models"], 200.0, 7),
    ("research-ci", "ml-research", ["beta-models"], 20.0, 5),
    ("eval-harness", "ml-research", ["gpt-4o", "default-models"], 120.0, 4),
    ("dev-sandbox", "litellm-dev", [], 10.0, 2),
    ("helpdesk-bot", "support-bots", ["mock-gpt"], 40.0, 9),
    ("faq-summarizer", "support-bots", ["gpt-3.5-turbo", "mock-gpt"], None, 5),
    ("platform-tools", "platform", [], None, 3),
    ("batch-embeddings", "platform", ["default-models", "local-llama"], 75.0, 4),
    ("o1-experiments", None, ["restricted-models"], 30.0, 1),
    ("demo-laptop", None, ["mock-gpt"], 5.0, 1),
    ("old-prototype", None, [], None, 1),
    ("contractor-acme", "contractors", ["mock-gpt"], 10.0, 1),
]
ERRORS = [
    # share, status, code
    (0.025, 429, "rate_limit_exceeded"),
    (0.01, 429, "budget_exceeded"),
    (0.015, 403, "model_not_allowed"),
    (0.012, 502, "upstream_unreachable"),
    (0.006, 504, "upstream_timeout"),
    (0.004, 400, "invalid_field"),
]


@dataclass
class DemoKey:
    row: VirtualKey
    names: list[str]  # model names it may call (wildcard routes expanded to a few real names)
    weight: int


class Command(BaseCommand):
    help = "Fill the database with demo teams, keys, deployments and request-log rows for the operator console."

    def add_arguments(self, parser):
        parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="config to load (default: examples/)")
        parser.add_argument("--requests", type=int, default=600, help="request-log rows to create (default 600)")
        parser.add_argument("--days", type=int, default=30, help="spread them over this many days (default 30)")
        parser.add_argument("--seed", type=int, default=7, help="random seed (the same seed, the same data)")
        parser.add_argument("--reset", action="store_true", help="remove earlier demo data first")

    def handle(self, *args, **options):
        if options["requests"] < 0 or options["days"] < 1:
            raise CommandError("--requests must be 0 or more and --days at least 1.")
        try:
            report = load_config(options["config"])
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Loaded {options['config']}: {report.summary()}")
        with transaction.atomic():
            if options["reset"]:
                self._reset()
            elif Team.objects.filter(team_alias=TEAMS[0][0]).exists():
                raise CommandError("Demo data is already there; pass --reset to replace it.")
            self._deployments()
            plaintexts = self._teams_and_keys()
            now = timezone.now()
            created = self._request_log(options["requests"], options["days"], random.Random(options["seed"]), now)
            self._spend(now)
        self.stdout.write(f"Created {len(TEAMS)} teams, {len(KEYS)} keys and {created} request-log rows.")
        self.stdout.write("Demo keys (plaintext shown this once; the database keeps only hashes):")
        for alias, plaintext in plaintexts:
            self.stdout.write(f"  {alias:<20} {plaintext}")

    def _reset(self) -> None:
        RequestLog.objects.filter(request_id__startswith="demo-").delete()
        keys = list(VirtualKey.objects.filter(key_alias__in=[k[0] for k in KEYS]))
        services.keys_delete(keys)
        teams = list(Team.objects.filter(team_alias__in=[t[0] for t in TEAMS]))
        services.teams_delete(teams, delete_keys=True)
        Deployment.objects.filter(source=Deployment.SOURCE_ADMIN, model_info__demo=True).delete()

    def _deployments(self) -> None:
        """Descriptions on the config's groups, and one deployment made by hand (source: admin)."""
        descriptions = {
            "beta-models": "Models in evaluation: granted to research and CI.",
            "default-models": "Every OpenAI model through the openai/* wildcard route, except o1.",
            "restricted-models": "OpenAI o1 models (openai/o1-*): expensive, granted one key at a time.",
        }
        for name, text in descriptions.items():
            AccessGroup.objects.filter(name=name, description="").update(description=text)
        group, _ = AccessGroup.objects.get_or_create(
            name="self-hosted", defaults={"description": "Models on our own GPUs (no per-token price)."}
        )
        deployment, made = Deployment.objects.get_or_create(
            model_name="local-llama",
            source=Deployment.SOURCE_ADMIN,
            defaults={
                "litellm_model": "hosted_vllm/meta-llama/Llama-3.1-8B-Instruct",
                "api_base": "http://gpu-01.internal:8000/v1",
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "model_info": dict(DEMO),
            },
        )
        if made:
            deployment.access_groups.add(group)
        invalidate_routes()

    def _teams_and_keys(self) -> list[tuple[str, str]]:
        teams = {}
        for alias, models, budget, duration, rpm, blocked in TEAMS:
            teams[alias] = services.team_create(
                team_alias=alias,
                models=models,
                max_budget=budget,
                budget_duration=duration,
                rpm_limit=rpm,
                blocked=blocked,
                metadata=dict(DEMO),
            )
        plaintexts = []
        for alias, team, models, budget, _ in KEYS:
            row, plaintext = services.key_generate(
                key_alias=alias,
                team_id=teams[team].team_id if team else None,
                models=models,
                max_budget=budget,
                budget_duration="1mo" if budget else None,
                duration="90d" if alias == "eval-harness" else None,
                rpm_limit=120 if alias.endswith("-bot") else None,
                metadata={**DEMO, "owner": alias.split("-")[0]},
            )
            plaintexts.append((alias, plaintext))
        now = timezone.now()
        services.key_update(VirtualKey.objects.get(key_alias="demo-laptop"), expires=now - timedelta(days=3))
        services.key_set_blocked(VirtualKey.objects.get(key_alias="old-prototype"), True)
        return plaintexts

    def _demo_keys(self) -> list[DemoKey]:
        routes = load_route_table()
        weights = {alias: weight for alias, _, _, _, weight in KEYS}
        found = []
        for row in VirtualKey.objects.select_related("team").filter(key_alias__in=weights):
            grant = grant_for(row)
            names = list(callable_models(grant, routes))
            for pattern in callable_patterns(grant, routes):
                names += WILDCARD_NAMES.get(pattern, [])
            if names:
                found.append(DemoKey(row=row, names=names, weight=weights[row.key_alias]))
        return found

    def _request_log(self, count: int, days: int, rng: random.Random, now: datetime) -> int:
        keys = self._demo_keys()
        if not keys or not count:
            return 0
        routes = load_route_table()
        rows = []
        for index in range(count):
            key = rng.choices(keys, weights=[k.weight for k in keys])[0]
            when = self._moment(rng, now, days, today=index < count // 20)
            if key.row.expires is not None and when > key.row.expires:
                when = key.row.expires - timedelta(hours=rng.uniform(1, 72))
            model = rng.choice(key.names)
            match = routes.resolve(model)
            status, code = 200, ""
            roll = rng.random()
            for share, error_status, error_code in ERRORS:
                if roll < share:
                    status, code = error_status, error_code
                    break
                roll -= share
            if status == 403:
                model = rng.choice(["gpt-4", "openai/o1-preview", "claude-3-5-sonnet"])
                match = None
            prompt = int(rng.lognormvariate(7.2, 0.9)) + 12 if status == 200 else 0
            completion = int(rng.lognormvariate(5.8, 0.8)) + 4 if status == 200 else 0
            price_in, price_out = PRICES.get(model, (0.000001, 0.000002))
            deployment = match.route.deployments[0] if match else None
            rows.append(
                RequestLog(
                    request_id=f"demo-{uuid.UUID(int=rng.getrandbits(128)).hex}",
                    created_at=when,
                    key_hash=key.row.key_hash,
                    key_name=key.row.key_alias or key.row.key_preview,
                    team_id=key.row.team_id or "",
                    requested_model=model,
                    route=match.route.model_name if match else "",
                    deployment=deployment.id if deployment else "",
                    upstream_model=deployment.upstream_model(match.captures) if deployment else "",
                    stream=rng.random() < 0.3,
                    status=status,
                    error_code=code,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    usage_source="upstream" if status == 200 else "",
                    cost=round(prompt * price_in + completion * price_out, 8),
                    latency_ms=round(rng.uniform(250, 900) + completion * rng.uniform(8, 25), 1),
                    upstream_latency_ms=None if deployment is None else round(rng.uniform(200, 800), 1),
                )
            )
        RequestLog.objects.bulk_create(rows, batch_size=500)
        return len(rows)

    @staticmethod
    def _moment(rng: random.Random, now: datetime, days: int, *, today: bool) -> datetime:
        """Busier on weekdays and in working hours, like real traffic; `today` puts it in today's hours so far."""
        midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        if today:
            return midnight + (now - midnight) * rng.random()
        while True:
            moment = now - timedelta(seconds=rng.uniform(0, days * 86400))
            weekday_weight = 0.35 if moment.weekday() >= 5 else 1.0
            hour_weight = 1.0 if 8 <= moment.hour < 19 else 0.3
            if rng.random() < weekday_weight * hour_weight:
                return moment

    def _spend(self, now: datetime) -> None:
        """Spend and last use as the request log says (the relay's accounting keeps them so in a live gateway)."""
        since = now - timedelta(days=30)
        for row in VirtualKey.objects.filter(key_alias__in=[k[0] for k in KEYS]):
            logs = RequestLog.objects.filter(key_hash=row.key_hash)
            totals = logs.filter(created_at__gte=since).aggregate(spend=Sum("cost"))
            last = logs.aggregate(last=Max("created_at"))["last"]
            VirtualKey.objects.filter(pk=row.pk).update(spend=round(totals["spend"] or 0.0, 6), last_used_at=last)
        # research-ci has used up its budget: the console shows it over budget (the relay answers 429).
        ci = VirtualKey.objects.get(key_alias="research-ci")
        VirtualKey.objects.filter(pk=ci.pk).update(max_budget=round(max(ci.spend * 0.97, 0.01), 2))
        for team in Team.objects.filter(team_alias__in=[t[0] for t in TEAMS]):
            spend = VirtualKey.objects.filter(team=team).aggregate(total=Sum("spend"))["total"] or 0.0
            Team.objects.filter(pk=team.pk).update(spend=round(spend, 6))
