"""Inference calls a customer's software makes, for tests that need usage made the way derouter makes it.

The product never calls inference (it only manages keys), so the client has no function for it:
tests speak to the simulator's OpenAI-compatible host directly.
"""

import requests
from django.conf import settings

MODEL = "claude-sonnet-4-6"


def _headers(key):
    return {"Authorization": f"Bearer {key}"}


def chat(key, text="hello", model=MODEL):
    """POST /chat/completions once (not streamed); the response, whatever its status."""
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return requests.post(f"{settings.DEROUTER_INFERENCE_BASE}/chat/completions", json=body, headers=_headers(key), timeout=10)


def list_models(key):
    """GET /models: the model ids the key may use."""
    response = requests.get(f"{settings.DEROUTER_INFERENCE_BASE}/models", headers=_headers(key), timeout=10)
    response.raise_for_status()
    return {item["id"] for item in response.json()["data"]}
