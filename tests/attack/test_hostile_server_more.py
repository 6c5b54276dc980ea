"""Attack review: more hostile answers for the SDK's boundary (the family's
machinery from tests/security/test_hostile_server.py, new cases)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.security._family import Tally
from tests.security.test_hostile_server import (
    Answer,
    fixed,
    hostile_server,
    http,
    run_case,
)

LOCKED = b'{"error": {"code": "activation_locked", "message": "x"}}'
MORE: dict[str, Answer] = {
    "retry-after superscript digit": fixed(http("429 Too Many Requests", LOCKED,
                                                "Retry-After: \xb2\r\n")),
    "retry-after http-date year 9999": fixed(http(
        "429 Too Many Requests", LOCKED, "Retry-After: Fri, 31 Dec 9999 23:59:59 GMT\r\n")),
    "retry-after http-date year 0001": fixed(http(
        "503 Service Unavailable", b"{}", "Retry-After: Mon, 01 Jan 0001 00:00:00 GMT\r\n")),
    "retry-after float": fixed(http("429 Too Many Requests", LOCKED, "Retry-After: 1e400\r\n")),
    "retry-after nan": fixed(http("429 Too Many Requests", LOCKED, "Retry-After: nan\r\n")),
    "retry_at year 9999": fixed(http("409 Conflict", b'{"error": {"code": "no_seats_left", '
                                     b'"retry_at": "9999-12-31T23:59:59Z"}}')),
    "retry_at year 0001": fixed(http("429 Too Many Requests", b'{"error": {"code": '
                                     b'"activation_locked", "retry_at": "0001-01-01T00:00:00Z"}}')),
    "retry_at naive": fixed(http("429 Too Many Requests", b'{"error": {"code": '
                                 b'"activation_locked", "retry_at": "2030-01-01T00:00:00"}}')),
    "retry_at number": fixed(http("429 Too Many Requests", b'{"error": {"code": '
                                  b'"activation_locked", "retry_at": 1e308}}')),
    "server_time year 9999": fixed(http("200 OK", b'{"token": "v4.public.AAAA", "nonce": "n", '
                                        b'"server_time": "9999-12-31T23:59:59Z"}')),
    "server_time year 0001": fixed(http("200 OK", b'{"token": "v4.public.AAAA", "nonce": "n", '
                                        b'"server_time": "0001-01-01T00:00:00Z"}')),
    "error server_time 9999": fixed(http(
        "403 Forbidden", b'{"error": {"code": "license_revoked",'
        b' "message": "m"}, "server_time": "9999-12-31T23:59:59Z"}')),
    "message not a string": fixed(http("403 Forbidden", b'{"error": {"code": "wrong_password",'
                                       b' "message": {"a": [1]}}}')),
    "details wrong": fixed(http("409 Conflict", b'{"error": {"code": "no_seats_left", '
                                b'"details": [1], "retry_at": []}}')),
    "content-length negative": fixed(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}"),
    "header not latin-1 utf8": fixed(http("429 Too Many Requests", LOCKED,
                                          "Retry-After: \u00e9\u00e9\r\n")),
    "chunked bad size": fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                              b"Content-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    "deflate bomb": fixed(http("200 OK", __import__("zlib").compress(
        b"{" + b" " * (32 * 1024 * 1024) + b"}", 9), "Content-Encoding: deflate\r\n")),
    "brotli-ish unknown encoding": fixed(http("200 OK", b"\x00\x01", "Content-Encoding: br\r\n")),
    "double gzip": fixed(http("200 OK", __import__("gzip").compress(__import__("gzip").compress(
        b"{" + b" " * (32 * 1024 * 1024) + b"}", 9), 9), "Content-Encoding: gzip, gzip\r\n")),
}


@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", sorted(MORE))
def test_hostile_answer_raises_only_documented_errors(name: str) -> None:
    tally = Tally("hostile server (attack review)")
    with tempfile.TemporaryDirectory() as folder, hostile_server() as (url, current):
        run_case(tally, Path(folder), url, current, name, MORE[name])
    tally.assert_clean()
