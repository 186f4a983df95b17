"""The Anthropic Messages door of the simulator: POST /proxy/v1/messages, minimal and not streamed.

What the Anthropic SDK and Claude Code send (base URL .../proxy, key as x-api-key or a Bearer
token); charged, limited and logged as a chat completion is.
"""

import re

from .api import EITHER, ApiError, Route
from .inference import parse_chat_request, served

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def parse_messages_request(body):
    """An Anthropic Messages body as the ChatRequest the inference door serves; 400 for what it lacks."""
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, "max_tokens: a positive integer is required")
    if body.get("stream"):
        raise ApiError(400, "stream: the simulator answers messages without streaming")
    system = body.get("system")
    messages = body.get("messages")
    if system is not None and isinstance(messages, list):
        messages = [{"role": "system", "content": system}, *messages]
    return parse_chat_request({"model": body.get("model"), "messages": messages, "max_tokens": max_tokens})


def create_message(request, caller, query):
    chat = parse_messages_request(request.json_body())
    with served(request, caller, chat) as (row, reply, finish_reason):
        return {
            "id": "msg_" + row.request_id.removeprefix("req_"),
            "type": "message",
            "role": "assistant",
            "model": row.model,
            "content": [{"type": "text", "text": reply}],
            "stop_reason": STOP_REASONS.get(finish_reason, "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": row.input_tokens, "output_tokens": row.output_tokens},
        }


ROUTES = (
    Route(re.compile(r"/proxy/v1/messages"), {"POST": create_message}, EITHER, anthropic=True),
)
