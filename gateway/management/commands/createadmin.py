"""`manage.py createadmin` (also `modelgate createadmin`): make an operator login for the admin console at /admin/.

Interactive by default (Django's createsuperuser asks for the name and password). For scripts: --username plus the
password in MODELGATE_ADMIN_PASSWORD (or --password, which other users of the machine can see in `ps`); run again
with the same username, it resets that operator's password instead of failing.
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

PASSWORD_ENV = "MODELGATE_ADMIN_PASSWORD"
USERNAME_ENV = "MODELGATE_ADMIN_USERNAME"


class Command(BaseCommand):
    help = "Create an operator (a Django superuser) for the admin console at /admin/, or reset its password."

    def add_arguments(self, parser):
        parser.add_argument(
            "--username", help=f"login name (default: ${USERNAME_ENV}, else asked; 'admin' with --noinput)"
        )
        parser.add_argument("--email", default="", help="e-mail address (optional)")
        parser.add_argument(
            "--password", help=f"the password; prefer ${PASSWORD_ENV}, which other users cannot see in the process list"
        )
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="never prompt; fail instead"
        )

    def handle(self, *args, **options):
        username = options["username"] or os.environ.get(USERNAME_ENV) or ""
        password = options["password"] or os.environ.get(PASSWORD_ENV) or ""
        if not password:
            if not options["interactive"]:
                raise CommandError(f"--noinput needs a password: set {PASSWORD_ENV} (or pass --password).")
            call_command("createsuperuser", interactive=True, username=username or None, email=options["email"] or None)
            self._hint()
            return
        username = username or "admin"
        users = get_user_model()
        user = users.objects.filter(**{users.USERNAME_FIELD: username}).first()
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("Password refused: " + " ".join(exc.messages)) from exc
        if user is None:
            users.objects.create_superuser(username, options["email"], password)
            self.stdout.write(f"Created operator '{username}'.")
        else:
            user.set_password(password)
            user.is_staff = user.is_superuser = user.is_active = True
            if options["email"]:
                user.email = options["email"]
            user.save()
            self.stdout.write(f"Operator '{username}' exists: password reset, staff and superuser rights ensured.")
        self._hint()

    def _hint(self) -> None:
        self.stdout.write("Log in at http://<gateway>/admin/ (the quick start: http://127.0.0.1:4000/admin/).")
