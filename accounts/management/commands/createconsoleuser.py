"""Create (or update) a console user with a role."""

import getpass
from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import ConsoleProfile, Role


class Command(BaseCommand):
    help = "Create a console user with the owner or staff role (or change an existing user's role)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=[choice.value for choice in Role], required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="The password; asked for interactively when left out.")
        parser.add_argument("--daily-cap", help="Staff only: USD they may top up per day.")

    def handle(self, *args, username, role, email, password, daily_cap, **options):
        cap = None
        if daily_cap is not None:
            try:
                cap = Decimal(daily_cap)
            except InvalidOperation:
                raise CommandError("--daily-cap must be a number.") from None
            if not cap.is_finite() or cap < 0:
                raise CommandError("--daily-cap must be zero or more.")
        if password is None:
            password = getpass.getpass("Password: ")
        user = User.objects.filter(username=username).first()
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        with transaction.atomic():
            if user is None:
                user = User.objects.create_user(username=username, email=email, password=password)
                action = "Created"
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
                action = "Updated"
            ConsoleProfile.objects.update_or_create(user=user, defaults={"role": role, "daily_topup_cap": cap})
        self.stdout.write(self.style.SUCCESS(f"{action} {username} as {role}."))
