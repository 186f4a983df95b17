"""Management command running the simulated derouter upstream."""

from django.core.management.base import BaseCommand, CommandError

from derouter.simulator.server import ConfigError, add_cli_arguments, serve_from_options


class Command(BaseCommand):
    help = "Run the simulated derouter upstream (management API + OpenAI-compatible inference)."

    def add_arguments(self, parser):
        add_cli_arguments(parser)

    def handle(self, *args, **options):
        try:
            serve_from_options(options)
        except ConfigError as error:
            raise CommandError(str(error)) from error
