"""Quick starts for every door (verify first, OpenAI SDK, curl, Anthropic SDK, Claude Code, Codex CLI, direct host),
in the portal and on the console's once-shown key, with the reseller's base URLs; and the doors answer."""

import html
import uuid
from decimal import Decimal

import pytest
import requests
from django.test import Client
from django.urls import reverse
from openai import OpenAI

from branding.doors import get_doors
from branding.models import Branding
from derouter import client as derouter_client

pytestmark = pytest.mark.django_db

DIRECT = "https://api-direct.example.com/openai/v1"


@pytest.fixture
def key(make_key):
    created = make_key("1", label="Doors customer")
    yield created
    derouter_client.delete_sub_key(created.id)


def portal_home(secret):
    browser = Client()
    assert browser.post("/portal/login/", {"client_key": secret}).status_code == 302
    return html.unescape(browser.get("/portal/").content.decode())


def assert_every_door(body, openai_base, anthropic_base):
    assert f"curl {openai_base}/models" in body                      # verify first
    assert "client.models.list()" in body
    assert f'base_url="{openai_base}"' in body and "chat.completions.create" in body  # OpenAI SDK
    assert f"curl {openai_base}/chat/completions" in body           # curl
    assert "import anthropic" in body and f'base_url="{anthropic_base}"' in body   # Anthropic SDK
    assert f'export ANTHROPIC_BASE_URL="{anthropic_base}"' in body and "ANTHROPIC_AUTH_TOKEN" in body  # Claude Code
    assert "[model_providers.custom]" in body and f'base_url = "{openai_base}"' in body  # Codex CLI
    for snippet in ("verify", "python", "curl", "anthropic", "claude-code", "codex"):
        assert f'data-copy-target="#snippet-{snippet}"' in body


def test_the_portal_shows_every_door_with_derouters_hosts_by_default(key, simulator):
    body = portal_home(key.secret.reveal())
    assert_every_door(body, simulator.inference_base, f"{simulator.base_url}/proxy")
    assert "direct host" not in body.lower()  # no direct host configured: not mentioned


def test_the_hosts_come_from_branding_and_the_direct_host_shows_when_set(key):
    Branding(inference_base_url="https://ai.example.com/openai/v1", direct_base_url=DIRECT).save()
    body = portal_home(key.secret.reveal())
    assert_every_door(body, "https://ai.example.com/openai/v1", "https://ai.example.com/proxy")
    assert f'base_url="{DIRECT}"' in body and "gpt-image-2" in body and "600 seconds" in body
    assert 'data-copy-target="#snippet-direct"' in body


def test_the_once_shown_key_carries_every_door(owner_client, simulator):
    Branding(direct_base_url=DIRECT).save()
    response = owner_client.post(reverse("console:key_create"),
                                 {"label": "Doors new", "budget": "1", "rpm_limit": "30", "token": str(uuid.uuid4())})
    body = html.unescape(response.content.decode())
    assert_every_door(body, simulator.inference_base, f"{simulator.base_url}/proxy")
    assert f'base_url="{DIRECT}"' in body
    assert 'export OPENAI_API_KEY="sk-ant-' in body


def test_the_branding_form_takes_the_direct_host_and_empty_hides_it(owner_client):
    data = {"product_name": "", "accent_color": "", "support_contact": "", "money_unit": "",
            "inference_base_url": "", "direct_base_url": DIRECT, "portal_language": ""}
    owner_client.post(reverse("branding:settings"), data)
    assert get_doors(Branding.load()).direct_base == DIRECT
    owner_client.post(reverse("branding:settings"), {**data, "direct_base_url": ""})
    assert get_doors(Branding.load()).direct_base == ""


# -- the snippets work against the simulator -------------------------------------------------------


def test_verify_first_lists_the_models_through_the_openai_sdk(key, simulator):
    doors = get_doors(Branding.load())
    sdk = OpenAI(base_url=doors.openai_base, api_key=key.secret.reveal())
    assert "claude-sonnet-4-6" in [model.id for model in sdk.models.list()]


@pytest.mark.parametrize("header", ["x-api-key", "Authorization"])
def test_the_anthropic_door_answers_as_the_sdk_and_claude_code_expect(key, header):
    doors = get_doors(Branding.load())
    secret = key.secret.reveal()
    auth = {"x-api-key": secret} if header == "x-api-key" else {"Authorization": f"Bearer {secret}"}
    response = requests.post(f"{doors.anthropic_base}/v1/messages", timeout=10,
                             headers={**auth, "anthropic-version": "2023-06-01"},
                             json={"model": "claude-sonnet-4-6", "max_tokens": 64, "system": "Be brief.",
                                   "messages": [{"role": "user", "content": "Hello!"}]})
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["type"] == "text" and "Hello!" in message["content"][0]["text"]
    assert message["usage"]["input_tokens"] > 0 and message["stop_reason"] == "end_turn"
    assert derouter_client.get_client_balance(secret).spent > Decimal(0)


def test_the_anthropic_door_refuses_in_anthropics_shape(key):
    doors = get_doors(Branding.load())
    missing = requests.post(f"{doors.anthropic_base}/v1/messages", timeout=10,
                            headers={"x-api-key": key.secret.reveal()},
                            json={"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]})
    assert missing.status_code == 400
    assert missing.json()["type"] == "error" and "max_tokens" in missing.json()["error"]["message"]
    unknown = requests.post(f"{doors.anthropic_base}/v1/messages", timeout=10, headers={"x-api-key": "sk-ant-nope"},
                            json={"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": []})
    assert unknown.status_code == 401 and unknown.json()["type"] == "error"


def test_the_codex_door_answers_the_responses_api_codex_speaks(key):
    """Codex accepts only wire_api = "responses" for a custom provider: it streams POST <base_url>/responses."""
    body = portal_home(key.secret.reveal())
    assert 'wire_api = "responses"' in body
    doors = get_doors(Branding.load())
    sdk = OpenAI(base_url=doors.openai_base, api_key=key.secret.reveal())
    whole = sdk.responses.create(model="claude-sonnet-4-6", instructions="Be brief.", input="Hello!")
    assert whole.status == "completed" and "Hello!" in whole.output_text and whole.usage.output_tokens > 0
    with sdk.responses.stream(model="claude-sonnet-4-6", input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Stream it"}]}]) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text and "Stream it" in final.output_text
    assert derouter_client.get_client_balance(key.secret.reveal()).total.requests == 2
