"""The OpenAI Responses door of the simulator: POST /openai/v1/responses, what Codex CLI speaks.

Codex accepts only ``wire_api = "responses"`` for a custom provider and posts to the base URL's
``/responses``, streamed; a public client of the real derouter calls the same path on its
``/openai/v1`` host. Text in, text out: charged, limited and logged as a chat completion is.
"""

import re
import time

from .api import EITHER, ApiError, Route, encode_json
from .inference import parse_chat_request, served

INCOMPLETE = {"length": {"reason": "max_output_tokens"}}


def as_messages(body):
    """The Responses body's ``instructions`` and ``input`` (text or a list of messages) as chat messages."""
    given = body.get("input")
    if isinstance(given, str):
        messages = [{"role": "user", "content": given}]
    elif isinstance(given, list):
        # Messages only (their input_text parts read as chat content parts); tool calls and outputs are left out.
        messages = [{"role": item.get("role"), "content": item.get("content")}
                    for item in given if isinstance(item, dict) and item.get("type", "message") == "message"]
    else:
        raise ApiError(400, "input must be a string or an array")
    if isinstance(body.get("instructions"), str):
        messages = [{"role": "system", "content": body["instructions"]}, *messages]
    return messages


class Reply:
    """The Response object, whole or as the stream of events Codex reads."""

    def __init__(self, row, reply, finish_reason):
        self.row, self.reply, self.finish_reason = row, reply, finish_reason
        self.id = "resp_" + row.request_id.removeprefix("req_")
        self.created = int(time.time())

    def message(self):
        return {"type": "message", "id": "msg_" + self.id.removeprefix("resp_"), "status": "completed",
                "role": "assistant", "content": [{"type": "output_text", "text": self.reply, "annotations": []}]}

    def response(self, done=True):
        return {
            "id": self.id, "object": "response", "created_at": self.created, "model": self.row.model,
            "status": ("completed" if self.finish_reason == "stop" else "incomplete") if done else "in_progress",
            "incomplete_details": INCOMPLETE.get(self.finish_reason) if done else None,
            "output": [self.message()] if done else [],
            "usage": {"input_tokens": self.row.input_tokens, "output_tokens": self.row.output_tokens,
                      "total_tokens": self.row.input_tokens + self.row.output_tokens} if done else None,
        }

    def events(self):
        item = {**self.message(), "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        yield "response.created", {"response": self.response(done=False)}
        yield "response.output_item.added", {"output_index": 0, "item": item}
        yield "response.content_part.added", {"item_id": item["id"], "output_index": 0, "content_index": 0, "part": part}
        for piece in re.findall(r"\S+\s*", self.reply):
            yield "response.output_text.delta", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                                 "delta": piece}
        yield "response.output_text.done", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                            "text": self.reply}
        yield "response.output_item.done", {"output_index": 0, "item": self.message()}
        yield "response.completed", {"response": self.response()}

    def server_sent_events(self):
        for number, (kind, data) in enumerate(self.events()):
            payload = encode_json({"type": kind, "sequence_number": number, **data})
            yield f"event: {kind}\ndata: {payload}\n\n".encode("utf-8")


def create_response(request, caller, query):
    body = request.json_body()
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be a boolean")
    chat = parse_chat_request({"model": body.get("model"), "messages": as_messages(body),
                               "max_tokens": body.get("max_output_tokens")})
    with served(request, caller, chat) as (row, reply, finish_reason):
        answer = Reply(row, reply, finish_reason)
        if stream:
            request.send_chunked(200, "text/event-stream", answer.server_sent_events(),
                                 {"Cache-Control": "no-cache", "X-Request-Id": row.request_id})
            return None
        return answer.response()


ROUTES = (
    Route(re.compile(r"/openai/v1/responses"), {"POST": create_response}, EITHER, openai=True),
)
