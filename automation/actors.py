"""Who the ledger and the audit trail name for work the worker did on its own."""

from django.contrib.auth.models import AnonymousUser

AUTO_TOP_UP = "auto top-up"
ALLOWANCE = "allowance"
KEY_EXPIRY = "key expiry"


class WorkerActor(AnonymousUser):
    """The worker acting under a name ("auto top-up"); not a signed-in user, so it has no daily cap."""

    def __init__(self, name):
        self.name = name

    def get_username(self):
        return self.name

    def __str__(self):
        return self.name
