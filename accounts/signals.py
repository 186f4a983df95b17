"""What signing in to the console restores: the user's own language."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from accounts.models import ConsoleProfile
from lib.language import remember_in_session


@receiver(user_logged_in, dispatch_uid="accounts.restore_language")
def restore_language(sender, request, user, **kwargs):
    language = ConsoleProfile.objects.filter(user=user).values_list("language", flat=True).first()
    if language and request is not None:
        remember_in_session(request, language)
