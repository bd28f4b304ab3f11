"""The backend under abuse: oversized bodies, validation errors that must not echo input, and
the interactive docs, which only a development run serves."""

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from app.limits import MAX_REQUEST_BYTES, BodyLimit
from app.main import create_app, docs_enabled

URL = "/api/v1/classify"
DOCS = ("/docs", "/redoc", "/openapi.json")


def test_a_body_over_the_limit_is_refused_with_413(client):
    payload = {"subject": "hi", "body": "x" * MAX_REQUEST_BYTES}
    response = client.post(URL, json=payload)
    assert response.status_code == 413
    assert len(response.content) < 200, "the answer does not carry the body back"


def test_a_body_at_the_limit_is_parsed(client):
    filler = " " * (MAX_REQUEST_BYTES - len('{"subject": "", "body": ""}'))
    raw = ('{"subject": "", "body": ""}' + filler).encode()
    assert len(raw) == MAX_REQUEST_BYTES
    response = client.post(URL, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200


def run(app, headers, chunks):
    """Drives an ASGI app with a body sent in `chunks`; returns (status, chunks read, app called)."""
    sent, read, called = [], [0], [False]

    async def inner(scope, receive, send):
        called[0] = True
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"][:10]})

    async def receive():
        i = read[0]
        read[0] += 1
        return {"type": "http.request", "body": chunks[i], "more_body": i + 1 < len(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": URL, "headers": headers}
    asyncio.run((app or BodyLimit(inner, max_bytes=100))(scope, receive, send))
    return sent[0]["status"], read[0], called[0]


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    status, read, called = run(None, [(b"content-length", b"101")], [b"x" * 101])
    assert (status, read, called) == (413, 0, False)


def test_a_chunked_body_is_refused_once_it_passes_the_limit_and_never_reaches_the_app():
    status, read, called = run(None, [], [b"x" * 60, b"x" * 60, b"x" * 60])
    assert (status, read, called) == (413, 2, False)
    status, read, called = run(None, [], [b"x" * 50, b"x" * 50])
    assert (status, read, called) == (200, 2, True)


@pytest.mark.parametrize(
    "payload",
    [
        {"subject": "SECRET-SUBJECT-" * 100, "body": 42},
        {"subject": "hello", "body": ["SECRET-LIST-ITEM"]},
        {"subject": "hello", "body": "hello", "SECRET-KEY-NAME": "SECRET-VALUE"},
        {"subject": "SECRET-SUBJECT-" * 100, "body": "x" * 100_001},
    ],
    ids=["wrong-type", "list", "unexpected-field", "too-long"],
)
def test_validation_errors_never_echo_the_input(client, payload):
    response = client.post(URL, json=payload)
    assert response.status_code == 422
    assert "SECRET" not in response.text and "xxxxxxxx" not in response.text, response.text
    for error in response.json()["detail"]:
        assert set(error) == {"loc", "msg", "type"}
        assert error["loc"][0] == "body"


def test_malformed_json_is_not_echoed(client):
    response = client.post(URL, content=b'{"subject": "SECRET', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "SECRET" not in response.text


@pytest.mark.parametrize("path", DOCS)
def test_the_docs_are_off_unless_development_asks_for_them(client, path):
    assert client.get(path).status_code == 404
    assert TestClient(create_app(docs=True)).get(path).status_code == 200


def test_only_app_docs_1_turns_the_docs_on():
    assert docs_enabled({"APP_DOCS": "1"})
    for env in ({}, {"APP_DOCS": ""}, {"APP_DOCS": "0"}, {"APP_DOCS": "yes"}):
        assert not docs_enabled(env), json.dumps(env)
