"""OpenAIChatClient failures: typed errors, retries with backoff and Retry-After, no secrets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from botkit.exceptions import (
    AuthenticationError,
    ContextLengthError,
    QuotaExceededError,
    RateLimitError,
    RequestRejectedError,
    ServiceError,
    ServiceUnavailableError,
)
from botkit.llm import ChatRequest, JsonSchema, ModelTable, OpenAIChatClient
from botkit.llm._errors import error_from_response, retry_after_from
from tests.core import conftest_llm
from tests.core.conftest_llm import KEY, Records, Sleeps
from tests.fakes.openai_server import (
    FakeOpenAI,
    RecordedRequest,
    Responder,
    bad_gateway_html,
    completion,
    context_length_exceeded,
    error,
    insufficient_quota,
    model_not_found,
    rate_limited,
    server_error,
    unauthorized,
    validation_error,
)

fake_openai = conftest_llm.fake_openai
sleeps = conftest_llm.sleeps
make_client = conftest_llm.make_client
MakeClient = conftest_llm.MakeClient

HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("scripted", "kind", "status"),
    [
        (unauthorized(), AuthenticationError, 401),
        (error(403, "Country not supported.", type="permission_error"), AuthenticationError, 403),
        (model_not_found(), RequestRejectedError, 404),
        (context_length_exceeded(), ContextLengthError, 400),
        (error(400, "Invalid value for 'temperature'."), RequestRejectedError, 400),
        (error(422, "Unprocessable."), RequestRejectedError, 422),
        (insufficient_quota(), QuotaExceededError, 429),
    ],
)
async def test_non_retryable_errors_are_raised_at_once_with_their_type(
    fake_openai: FakeOpenAI,
    make_client: MakeClient,
    sleeps: Sleeps,
    scripted: Responder,
    kind: type[ServiceError],
    status: int,
) -> None:
    fake_openai.script(scripted)
    records = Records()
    with pytest.raises(kind) as caught:
        await make_client().complete(ChatRequest(HELLO), record=records)
    assert type(caught.value) is kind
    assert caught.value.service == "llm"
    assert caught.value.status == status
    assert not caught.value.retryable
    assert len(fake_openai.requests) == 1
    assert sleeps == []
    assert [(r.ok, r.attempt) for r in records] == [(False, 1)]


async def test_404_names_the_model(fake_openai: FakeOpenAI, make_client: MakeClient) -> None:
    fake_openai.script(model_not_found())
    with pytest.raises(RequestRejectedError, match="model 'gpt-5-nope' not found"):
        await make_client().complete(ChatRequest(HELLO, model="gpt-5-nope"))


async def test_context_length_error_keeps_the_server_code(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(context_length_exceeded())
    with pytest.raises(ContextLengthError) as caught:
        await make_client().complete(ChatRequest(HELLO))
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
async def test_server_errors_are_retried_with_the_same_body(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps, status: int
) -> None:
    fake_openai.script(server_error(status), completion("recovered", usage=(1000, 1000)))
    records = Records()
    reply = await make_client().complete(
        ChatRequest(HELLO, max_tokens=10, purpose="chat"), record=records
    )
    assert reply.content == "recovered"
    first, second = fake_openai.requests
    assert first.body == second.body
    assert first.json["messages"] == HELLO  # the turn was not appended twice
    assert [(r.attempt, r.ok) for r in records] == [(1, False), (2, True)]
    assert records[0].error is not None
    assert str(status) in records[0].error or "server had an error" in records[0].error
    assert records[0].cost is None
    assert records[1].cost is not None
    # first backoff: between half of backoff_base and backoff_base
    assert len(sleeps) == 1
    assert 0.25 <= sleeps[0] <= 0.5


async def test_backoff_grows_exponentially_up_to_the_cap_then_gives_up(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps
) -> None:
    fake_openai.script(*[server_error(503) for _ in range(6)])
    records = Records()
    client = make_client(max_retries=5, backoff_base=1.0, backoff_max=4.0)
    with pytest.raises(ServiceUnavailableError):
        await client.complete(ChatRequest(HELLO), record=records)
    assert len(fake_openai.requests) == 6
    assert len(records) == 6
    assert len(sleeps) == 5
    for wait, ceiling in zip(sleeps, [1, 2, 4, 4, 4], strict=True):
        assert ceiling / 2 <= wait <= ceiling


async def test_html_502_page_is_handled_and_retried(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(bad_gateway_html(), bad_gateway_html())
    with pytest.raises(ServiceUnavailableError) as caught:
        await make_client(max_retries=1).complete(ChatRequest(HELLO))
    message = str(caught.value)
    assert "502" in message
    assert "Bad Gateway" in message
    assert len(message) < 300
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize(
    ("scripted", "waited"),
    [
        (rate_limited(retry_after="2"), 2.0),
        (rate_limited(retry_after_ms="1500"), 1.5),
        (rate_limited(retry_after="0.25", retry_after_ms="750"), 0.75),
        (rate_limited(message="Rate limit reached. Please try again in 1.5s."), 1.5),
        (rate_limited(retry_after="45"), 45.0),  # above backoff_max but under 60 s
    ],
)
async def test_rate_limit_waits_what_the_server_said(
    fake_openai: FakeOpenAI,
    make_client: MakeClient,
    sleeps: Sleeps,
    scripted: Responder,
    waited: float,
) -> None:
    fake_openai.script(scripted, completion("ok"))
    reply = await make_client(backoff_max=30.0).complete(ChatRequest(HELLO))
    assert reply.content == "ok"
    assert len(sleeps) == 1
    assert sleeps[0] == pytest.approx(waited)
    assert fake_openai.requests[0].body == fake_openai.requests[1].body


async def test_retry_after_as_an_http_date_is_honoured(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    fake_openai.script(rate_limited(retry_after=when), completion("ok"))
    await make_client().complete(ChatRequest(HELLO))
    assert len(sleeps) == 1
    assert 8.0 <= sleeps[0] <= 10.0


async def test_retry_after_over_a_minute_is_raised_not_waited(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps
) -> None:
    fake_openai.script(rate_limited(retry_after="120"), completion("never"))
    with pytest.raises(RateLimitError) as caught:
        await make_client().complete(ChatRequest(HELLO))
    assert caught.value.retry_after == 120.0
    assert sleeps == []
    assert len(fake_openai.requests) == 1


async def test_rate_limits_exhausting_retries_raise_rate_limit_error(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps
) -> None:
    fake_openai.script(*[rate_limited(retry_after="1") for _ in range(3)])
    with pytest.raises(RateLimitError) as caught:
        await make_client(max_retries=2).complete(ChatRequest(HELLO))
    assert caught.value.retryable
    assert caught.value.retry_after == 1.0
    assert sleeps == [1.0, 1.0]
    assert len(fake_openai.requests) == 3


async def test_unreachable_server_is_service_unavailable(sleeps: Sleeps) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpenAIChatClient(
        f"http://127.0.0.1:{port}/v1", None, "gpt-4o", models=ModelTable(), sleep=sleeps
    )
    try:
        with pytest.raises(ServiceUnavailableError, match="cannot talk to"):
            await client.complete(ChatRequest(HELLO))
    finally:
        await client.close()
    assert len(sleeps) == 4  # max_retries


def slow_reply(seconds: float) -> Responder:
    async def respond(
        request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fake.closing.wait(), seconds)
        return web.json_response({})

    return respond


async def test_plain_request_timeout_is_service_unavailable_and_retried(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps
) -> None:
    fake_openai.script(slow_reply(5.0), completion("in time"))
    reply = await make_client(timeout=0.3).complete(ChatRequest(HELLO))
    assert reply.content == "in time"
    assert len(sleeps) == 1


async def test_plain_request_timeout_after_the_last_retry(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(slow_reply(5.0))
    with pytest.raises(ServiceUnavailableError, match=r"within 0\.2 s"):
        await make_client(timeout=0.2, max_retries=0).complete(ChatRequest(HELLO))


async def test_api_key_never_appears_in_errors_or_logs(
    fake_openai: FakeOpenAI, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_openai.script(
        server_error(500), unauthorized(echo_key=True), rate_limited(), insufficient_quota()
    )
    client = make_client()
    errors: list[BaseException] = []
    for _ in range(3):
        try:
            await client.complete(ChatRequest(HELLO))
        except ServiceError as exc:
            errors.append(exc)
    assert [type(e) for e in errors] == [AuthenticationError, QuotaExceededError]
    # the fake really did put the whole key in its 401 message
    assert KEY in fake_openai.requests[1].headers["Authorization"]
    for failure in errors:
        assert KEY not in str(failure)
        assert KEY not in repr(failure)
    assert "***" in str(errors[0])
    assert caplog.records  # the retries were logged
    assert KEY not in caplog.text
    assert KEY not in repr(client)


def test_error_mapping_for_in_stream_errors_uses_type_and_code() -> None:
    def mapped(body: dict[str, object]) -> ServiceError:
        return error_from_response(None, {"error": body}, model="m")

    assert isinstance(mapped({"message": "x", "type": "server_error"}), ServiceUnavailableError)
    assert isinstance(
        mapped({"message": "x", "code": "context_length_exceeded"}), ContextLengthError
    )
    assert isinstance(mapped({"message": "x", "type": "insufficient_quota"}), QuotaExceededError)
    assert isinstance(mapped({"message": "x", "code": "rate_limit_exceeded"}), RateLimitError)
    assert isinstance(mapped({"message": "x", "code": "503"}), ServiceUnavailableError)
    assert isinstance(
        mapped({"message": "x", "type": "invalid_request_error"}), RequestRejectedError
    )


def test_error_mapping_survives_bodies_that_are_not_error_objects() -> None:
    for body in (b"", b"\xff\xfe", b"null", b"[1]", b'{"error": 5}', "plain words"):
        error = error_from_response(503, body, model="m")
        assert isinstance(error, ServiceUnavailableError)
        assert "503" in str(error)
    long_page = b"<html>" + b"x" * 10_000
    assert len(str(error_from_response(502, long_page, model="m"))) < 300


def test_context_length_is_recognised_by_its_message_too() -> None:
    body = {"error": {"message": "This model's maximum context length is 4096 tokens."}}
    assert isinstance(error_from_response(400, body, model="m"), ContextLengthError)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_from(headers) == expected


# -- llama-cpp-python reports an invalid request as a 500 (tests/realserver sees it) -------


async def test_a_refused_json_schema_is_a_one_line_rejection_not_an_outage(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps
) -> None:
    """With the mode set to json_schema (so botkit does not fall back), a server that
    refuses it as llama-cpp-python does (a 500 with a validation error) gets one
    request: not four retries as if it were down, and no traceback in the message."""
    fake_openai.refused_formats = {"json_schema"}
    models = ModelTable.from_config({"gpt-4-turbo": {"structured_output": "json_schema"}})
    schema = JsonSchema("mood", {"type": "object", "properties": {"mood": {"type": "string"}}})
    request = ChatRequest(
        [{"role": "user", "content": "How do you feel, in JSON?"}], response_format=schema
    )
    records = Records()
    with pytest.raises(RequestRejectedError) as caught:
        await make_client(models=models).complete(request, record=records)
    assert not caught.value.retryable
    assert (caught.value.status, caught.value.code) == (500, "invalid_request")
    assert caught.value.reason == (
        "the server refused the request as invalid: response_format.type: "
        "Input should be 'text' or 'json_object' (got 'json_schema')"
    )
    assert len(fake_openai.requests) == 1
    assert sleeps == []
    assert [(r.ok, r.attempt) for r in records] == [(False, 1)]


async def test_a_refused_message_names_the_field_not_the_union_branches(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    """A null assistant content: pydantic lists a mismatch for every kind of message;
    the one that matters is the content that is not a string."""
    fake_openai.script(
        validation_error(
            (
                "literal_error",
                ("messages", 1, "ChatCompletionRequestSystemMessage", "role"),
                "Input should be 'system'",
                "assistant",
            ),
            (
                "string_type",
                ("messages", 1, "ChatCompletionRequestAssistantMessage", "content"),
                "Input should be a valid string",
                None,
            ),
            (
                "missing",
                ("messages", 1, "ChatCompletionRequestToolMessage", "tool_call_id"),
                "Field required",
                {"role": "assistant", "content": None},
            ),
        )
    )
    with pytest.raises(RequestRejectedError) as caught:
        await make_client().complete(ChatRequest(HELLO))
    assert caught.value.reason == (
        "the server refused the request as invalid: messages.1.content: "
        "Input should be a valid string (got None); 2 more"
    )
    assert len(fake_openai.requests) == 1


def test_a_500_that_is_not_a_request_validation_stays_retryable() -> None:
    for message in (
        "validation errors: the GPU is on fire",
        "1 validation error:\n  {'type': 'x', 'loc': ('response', 'id'), 'msg': 'bad'}",
    ):
        body = {"error": {"message": message, "type": "internal_server_error"}}
        assert isinstance(error_from_response(500, body, model="m"), ServiceUnavailableError)
