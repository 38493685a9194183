from django.core.management.base import BaseCommand, CommandError

from models_registry.config import ConfigError, load_config


class Command(BaseCommand):
    help = "Load a LiteLLM-style config.yaml into the database (idempotent; hand-made rows are never touched)."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path: str, **options):
        try:
            report = load_config(path)
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        for warning in report.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        for label, names in (("created", report.created), ("updated", report.updated), ("removed", report.deleted)):
            for name in names:
                self.stdout.write(f"{label}: {name}")
        self.stdout.write(self.style.SUCCESS(f"Loaded {path}: {report.summary()}"))
