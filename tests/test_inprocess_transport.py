"""The SDK's in-process transport answers as HTTPTransport does over a real socket.

Most SDK tests reach the server through :meth:`tests.inprocess.InProcessServer.transport`
(no socket); this module checks, against the same app served by uvicorn on a
socket (:class:`tests.threaded.ThreadedServer`), that the SDK cannot tell the
difference: the same :class:`Response` (status, parsed body, lower-case
headers), the same errors, the same retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from software_dna.client.transport import HTTPTransport, Response
from software_dna.errors import ServerError, ServerUnreachable

from .inprocess import InProcessApp, InProcessServer, asgi_transport, unreachable
from .netfaults import free_port, garbage_server
from .threaded import ThreadedServer


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedServer,
                                                                        InProcessServer]]:
    """One data folder served twice: on a socket and in-process."""
    folder = tmp_path_factory.mktemp("both")
    with ThreadedServer(folder) as threaded, InProcessServer(folder) as inprocess:
        yield threaded, inprocess


def comparable(answer: Response) -> tuple[int, Any, dict[str, str]]:
    headers = {k: v for k, v in answer.headers.items() if k != "date"}  # uvicorn's clock
    # The two answers may be a second apart: the server's own clock, not the transport.
    body = {k: v for k, v in answer.body.items() if k != "server_time"}
    return answer.status, body, headers


@pytest.mark.parametrize("method,path,body,bearer", [
    ("GET", "/v1/health", None, None),
    ("POST", "/v1/activations", {"license_key": "nope"}, None),
    ("POST", "/v1/validations", {"nonce": "n" * 16}, "not-a-secret"),
    ("GET", "/v1/no-such-route", None, None),
    ("DELETE", "/v1/health", None, None),
])
def test_the_same_answer_as_over_a_socket(servers: tuple[ThreadedServer, InProcessServer],
                                          method: str, path: str, body: Any,
                                          bearer: str | None) -> None:
    threaded, inprocess = servers
    over_socket = HTTPTransport(threaded.url)
    in_process = inprocess.transport()
    try:
        expected = over_socket.request(method, path, json_body=body, bearer=bearer)
        got = in_process.request(method, path, json_body=body, bearer=bearer)
    finally:
        over_socket.close()
        in_process.close()
    assert comparable(got) == comparable(expected)
    assert all(name == name.lower() for name in got.headers)


def test_offline_is_the_same_refusal(servers: tuple[ThreadedServer, InProcessServer]) -> None:
    _, inprocess = servers
    socket_less = HTTPTransport(f"http://127.0.0.1:{free_port()}", sleep=lambda _: None)
    link = inprocess.link()
    transport = link.transport()
    for refused in (socket_less, unreachable()):
        for retry in (False, True):
            with pytest.raises(ServerUnreachable, match="Could not reach the license server"):
                refused.request("GET", "/v1/health", retry=retry)
    assert transport.request("GET", "/v1/health").status == 200
    link.offline()
    with pytest.raises(ServerUnreachable, match="Could not reach the license server"):
        transport.request("GET", "/v1/health")
    assert inprocess.transport().request("GET", "/v1/health").status == 200  # others online
    inprocess.online = False
    try:
        with pytest.raises(ServerUnreachable):
            inprocess.transport().request("GET", "/v1/health")
    finally:
        inprocess.online = True
    link.online()
    assert transport.request("GET", "/v1/health").status == 200


class Scripted:
    """A bare ASGI app answering the statuses and bodies given, in order."""

    def __init__(self, *answers: tuple[int, bytes]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        status, body = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        await receive()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("status,body,match", [
    (200, b"<html>not json</html>", "not a JSON object"),
    (200, b"[1, 2]", "not a JSON object"),
])
def test_a_body_that_is_not_a_json_object_is_the_same_error(status: int, body: bytes,
                                                            match: str) -> None:
    app = InProcessApp(Scripted((status, body)))
    try:
        with garbage_server(status, body) as url, \
                pytest.raises(ServerError, match=match) as over_socket:
            HTTPTransport(url).request("GET", "/v1/health")
        with pytest.raises(ServerError, match=match) as in_process:
            asgi_transport(lambda: app).request("GET", "/v1/health")
    finally:
        app.close()
    assert str(in_process.value) == str(over_socket.value)


@pytest.mark.parametrize("retry,calls,status", [(True, 3, 200), (False, 1, 503)])
def test_retries_on_503_without_sleeping(retry: bool, calls: int, status: int) -> None:
    scripted = Scripted((503, b"<html>busy</html>"), (503, b""), (200, b'{"ok": true}'))
    app = InProcessApp(scripted)
    waits: list[float] = []
    try:
        answer = asgi_transport(lambda: app, sleep=waits.append).request(
            "POST", "/v1/validations", json_body={}, retry=retry)
    finally:
        app.close()
    assert (answer.status, scripted.calls) == (status, calls)
    assert waits == ([0.2, 0.4] if retry else [])
    if not retry:
        assert answer.body == {}  # a 5xx that is not JSON: an empty body, as over HTTP
