"""Secrets kept at rest (Client Keys in portal sessions) encrypted with a key derived from SECRET_KEY.

Fernet (AES-128-CBC with HMAC-SHA256) under a key that HKDF derives from
SECRET_KEY for one purpose only; the keys derived from SECRET_KEY_FALLBACKS
still decrypt, so rotating SECRET_KEY does not sign every customer out.
"""

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _derive_fernet_key(secret_key, purpose):
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived)


@functools.lru_cache(maxsize=8)
def _get_fernet(purpose, secret_keys):
    return MultiFernet([Fernet(_derive_fernet_key(secret_key, purpose)) for secret_key in secret_keys])


def _get_current_fernet(purpose):
    return _get_fernet(purpose, (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS))


def encrypt(text, purpose):
    return _get_current_fernet(purpose).encrypt(text.encode()).decode("ascii")


def decrypt(token, purpose):
    """The text, or None when the token is not ours (another key, tampered, or not a token at all)."""
    if not isinstance(token, str):
        return None
    try:
        return _get_current_fernet(purpose).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        return None
