"""Oversized and malformed bodies: always a 4xx JSON error (or a clean success), never a 500.

Sent over real HTTP to every kind of route (public, an activation's own,
admin): 10 MB bodies with and without Content-Length, deep nesting (arrays
and objects, up to 100k levels), every field of the activation body with
values of the wrong type, and unicode edge cases in the email address and
registration details (NUL, lone surrogates escaped in JSON, RTL overrides,
4-byte emoji, zero-width and BOM characters, very long local parts, IDN
domains, invalid UTF-8 bytes).  An input the server accepts must work
afterwards (its token verifies and says what was sent).  And the server's
memory stays bounded: its resident size (``/proc/<pid>/status``) after the
whole run is within a fixed margin of the size after a warm-up.
"""

from __future__ import annotations

import json
import secrets
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from software_dna.server.domain.json_shape import MAX_CONTAINERS, MAX_DEPTH, MAX_MEMBERS, refusal
from software_dna.server.testing import LocalServer
from tests.security._family import Scale, Tally
from tests.server.helpers import check_token, fingerprint, nonce

MB = 1024 * 1024
#: Growth of the server's resident memory allowed over a whole run.
RSS_MARGIN = 64 * MB


@dataclass
class Target:
    """Where the bodies go: a product, a license key, an activation, the admin key."""

    url: str
    product: str
    keys: list[str]
    license_key: str
    activation_id: str
    secret: str
    admin_key: str


def make_target(server: LocalServer) -> Target:
    product = "bad-" + secrets.token_hex(3)
    keys = server.admin.setup_product(product)
    key = server.admin.issue_license(product, seats=100_000)["license_key"]
    answer = requests.post(f"{server.url}/v1/activations", timeout=30, json=_activation(
        product, key))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Target(server.url, product, keys, key, body["activation_id"],
                  body["activation_secret"], server.admin_key)


def _activation(product: str, key: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "product": product, "license_key": key, "fingerprint": fingerprint("bad-bodies"),
        "nonce": nonce(), "idempotency_key": secrets.token_urlsafe(18)}
    body.update(extra)
    return body


def _routes(t: Target) -> list[tuple[str, str, dict[str, str]]]:
    """(method, url, headers) of a public, an owner's and an admin route taking a body."""
    return [
        ("POST", f"{t.url}/v1/activations", {}),
        ("PUT", f"{t.url}/v1/activations/{t.activation_id}/settings",
         {"Authorization": f"Bearer {t.secret}"}),
        ("POST", f"{t.url}/v1/admin/products", {"Authorization": f"Bearer {t.admin_key}"}),
    ]


def _json_4xx(answer: requests.Response) -> bool:
    if not 400 <= answer.status_code < 500:
        return False
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return False
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == {"error"} and "Traceback" not in answer.text


def _send(http: requests.Session, method: str, url: str, data: bytes | Iterator[bytes],
          headers: dict[str, str]) -> requests.Response:
    return http.request(method, url, data=data, timeout=60,
                        headers={"Content-Type": "application/json", **headers})


# --------------------------------------------------------------------------- the cases


def oversized(t: Target, http: requests.Session, tally: Tally, rounds: int) -> None:
    """10 MB bodies, with a Content-Length and chunked, to each kind of route: 413."""
    big = b'{"pad": "' + b"x" * (10 * MB) + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 256 * 1024):
            yield big[start:start + 256 * 1024]

    for _ in range(rounds):
        for method, url, headers in _routes(t):
            for label, data in (("Content-Length", big), ("chunked", chunks())):
                try:
                    answer = _send(http, method, url, data, headers)
                    ok = _json_4xx(answer) and answer.status_code == 413
                    what = f"HTTP {answer.status_code} {answer.text[:120]}"
                except requests.ConnectionError as exc:
                    # The server may answer 413 and close before reading all of it.
                    ok, what = "Connection reset" in str(exc) or "Broken pipe" in str(exc), \
                        repr(exc)[:200]
                tally.check(ok, f"10 MB ({label}) to {method} {url}: {what}")
    # A Content-Length that is a lie (far larger than what follows): 413 at once, no hang.
    with socket.create_connection(("127.0.0.1", int(t.url.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(b"POST /v1/admin/products HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n{}")
        reply = s.recv(4096)
    tally.check(reply.startswith(b"HTTP/1.1 413"), f"lying Content-Length: {reply[:80]!r}")


def nesting_bodies(depth: int) -> list[tuple[str, bytes]]:
    """Deeply nested JSON documents, well-formed and not."""
    return [
        (f"{depth} nested arrays", b"[" * depth + b"]" * depth),
        (f"{depth} nested objects", b'{"a":' * depth + b"1" + b"}" * depth),
        (f"{depth} unclosed arrays", b"[" * depth),
        (f"{depth} nested arrays in a field",
         b'{"settings": {"x": ' + b"[" * depth + b"]" * depth + b"}}"),
    ]


def deep_nesting(t: Target, http: requests.Session, tally: Tally,
                 depths: list[int]) -> None:
    """Nesting up to the body limits (64 KiB public, 1 MiB admin): 4xx, never 500."""
    for depth in depths:
        for label, data in nesting_bodies(depth):
            for method, url, headers in _routes(t):
                answer = _send(http, method, url, data, headers)
                tally.check(_json_4xx(answer),
                            f"{label} to {method} {url}: HTTP {answer.status_code} "
                            f"{answer.text[:160]}")


#: Values of the wrong type (and of the right type but absurd) for any field.
WRONG_VALUES: list[Any] = [
    None, True, 0, -1, 10**400, 1.5, -0.0, 1e308, "", " ", "x" * 35_000, [], [1, "a"], {},
    {"$ne": None}, ["product"], {"nested": {"deeper": [None]}},
]


def wrong_types(t: Target, http: requests.Session, tally: Tally) -> None:
    """Each field of the activation and validation bodies replaced by each wrong value."""
    base = _activation(t.product, t.license_key)
    fields = [*base, "password", "email", "registration", "consent", "client",
              "installation_id", "replaces"]
    for name in fields:
        for value in WRONG_VALUES:
            body = dict(base, nonce=nonce(), idempotency_key=secrets.token_urlsafe(18))
            body[name] = value
            data = json.dumps(body).encode()
            answer = _send(http, "POST", f"{t.url}/v1/activations", data, {})
            tally.check(_json_4xx(answer) or (answer.status_code in (200, 201) and
                                               _accepted_as_sent(t, answer, body)),
                        f"activation with {name}={_show(value)}: HTTP {answer.status_code} "
                        f"{answer.text[:160]}")
    validate = f"{t.url}/v1/activations/{t.activation_id}/validate"
    auth = {"Authorization": f"Bearer {t.secret}"}
    for name in ("fingerprint", "nonce"):
        for value in WRONG_VALUES:
            body = {"fingerprint": fingerprint("bad-bodies"), "nonce": nonce(), name: value}
            answer = _send(http, "POST", validate, json.dumps(body).encode(), auth)
            tally.check(_json_4xx(answer), f"validation with {name}={_show(value)}: "
                                           f"HTTP {answer.status_code} {answer.text[:160]}")
    for value in WRONG_VALUES:  # the whole body
        answer = _send(http, "POST", f"{t.url}/v1/activations", json.dumps(value).encode(), {})
        tally.check(_json_4xx(answer), f"activation body {_show(value)}: HTTP "
                                       f"{answer.status_code} {answer.text[:160]}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


#: Email addresses: (label, raw JSON of the value, accepted?).  Raw so that escapes reach the
#: server.  International letters, emoji and IDN domains are addresses (RFC 6531); control,
#: format (zero-width, BOM, bidi) and separator characters, and lone surrogates, are not.
EMAILS: list[tuple[str, str, bool]] = [
    ("NUL in the local part", r'"ann\u0000e@example.com"', False),
    ("NUL at the end", r'"anne@example.com\u0000"', False),
    ("lone high surrogate", r'"ann\ud800e@example.com"', False),
    ("lone low surrogate", r'"anne@exam\udfffple.com"', False),
    ("reversed surrogate pair", r'"anne\udc00\ud800@example.com"', False),
    ("RTL override", r'"anne\u202e@example.com"', False),
    ("RTL override in the domain", r'"anne@exa\u202emple.com"', False),
    ("4-byte emoji", r'"\ud83d\ude00anne@example.com"', True),
    ("4-byte emoji raw UTF-8", '"\U0001f600anne@example.com"', True),
    ("zero-width joiner", r'"an\u200dne@example.com"', False),
    ("BOM", r'"\ufeffanne@example.com"', False),
    ("64-character local part", '"' + "a" * 64 + '@example.com"', True),
    ("65-character local part", '"' + "a" * 65 + '@example.com"', False),
    ("1000-character local part", '"' + "a" * 1000 + '@example.com"', False),
    ("254 characters in all", '"' + "a" * 64 + "@" + "b" * 177 + '.example.com"', True),
    ("IDN domain", '"anne@m\u00fcnchen.de"', True),
    ("IDN domain escaped", r'"anne@m\u00fcnchen.de"', True),
    ("punycode domain", '"anne@xn--mnchen-3ya.de"', True),
    ("IDN local part", '"\u00e4nne@example.com"', True),
    ("CJK address", '"\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a"', True),
    ("control characters", r'"an\u0001\u001fne@example.com"', False),
    ("DEL and C1 controls", r'"an\u007f\u0085ne@example.com"', False),
    ("line separator", r'"anne\u2028@example.com"', False),
    ("private use and noncharacter", r'"anne\ue000\uffff@example.com"', False),
    ("combining marks", '"a' + "\u0301" * 60 + '@example.com"', True),
]

#: Registration documents (raw JSON of the whole object, accepted?).  No control characters
#: (NUL, terminal escapes), separators or bidi overrides: the vendor's tools display these.
REGISTRATIONS: list[tuple[str, str, bool]] = [
    ("NUL in a value", r'{"name": "Ann\u0000e"}', False),
    ("NUL in a key", r'{"na\u0000me": "Anne"}', False),
    ("lone surrogate in a value", r'{"name": "Ann\ud800e"}', False),
    ("lone surrogate in a key", r'{"\udfffname": "Anne"}', False),
    ("RTL override", r'{"company": "\u202eevil.exe"}', False),
    ("4-byte emoji", r'{"name": "\ud83d\ude00\ud83d\ude00"}', True),
    ("4-byte emoji, 256 of them", '{"name": "' + "\U0001f600" * 256 + '"}', True),
    ("4-byte emoji, 257 of them", '{"name": "' + "\U0001f600" * 257 + '"}', False),
    ("256 ASCII", '{"name": "' + "n" * 256 + '"}', True),
    ("zero-width and BOM", r'{"name": "\u200b\ufeff"}', True),
    ("empty value", '{"name": ""}', True),
    ("empty key", '{"": "x"}', False),
    ("duplicate keys", '{"name": "a", "name": "b"}', False),  # ambiguous JSON: refused
    ("control characters", r'{"name": "\u0001\u0002\u001b[31mred"}', False),
    ("CJK", '{"\u540d\u524d": "\u5c71\u7530\u592a\u90ce"}', True),
    ("16 keys of 64", "{" + ", ".join(f'"{i:064d}": "v"' for i in range(16)) + "}", True),
    ("nested object", '{"name": {"first": "Anne"}}', False),
    ("array value", '{"name": ["Anne"]}', False),
    ("number value", '{"name": 1e999}', False),
]


def _accepted_as_sent(t: Target, answer: requests.Response, body: dict[str, Any]) -> bool:
    """An accepted activation's token verifies, for this product, with the data as stored."""
    try:
        lic = check_token(answer.json()["token"], t.keys, t.product)
    except Exception:  # the finding is that it did not verify
        return False
    if "email" in body and isinstance(body.get("email"), str) and body.get("consent"):
        return lic.email is not None
    return True


def unicode_fields(t: Target, http: requests.Session, tally: Tally) -> None:
    """Each edge case as the email, and as the registration: 4xx, or accepted and usable."""
    cases: list[tuple[str, str, bool]] = [(f"email with {label}", f'"email": {raw}', accept)
                                          for label, raw, accept in EMAILS]
    cases += [(f"registration with {label}", f'"registration": {raw}', accept)
              for label, raw, accept in REGISTRATIONS]
    for label, fragment, accept in cases:
        base = _activation(t.product, t.license_key, consent=True)
        machine = "uni-" + secrets.token_hex(4)
        base["fingerprint"] = fingerprint(machine)
        data = (json.dumps(base)[:-1] + ", " + fragment + "}").encode("utf-8", "surrogatepass")
        answer = _send(http, "POST", f"{t.url}/v1/activations", data, {})
        if accept:
            ok = answer.status_code == 201 and _accepted_as_sent(
                t, answer, json.loads(data.decode("utf-8", "replace")))
            ok = ok and _admin_can_export(t, http, answer)
        else:
            ok = _json_4xx(answer) and answer.status_code == 400 and "\ufffd" not in answer.text
        tally.check(ok, f"{label} (should be {'accepted' if accept else 'refused'}): "
                        f"HTTP {answer.status_code} {answer.text[:160]}")
    # Client facts are shown in the vendor's tools too: no terminal escapes, no overrides.
    for label, raw in (("terminal escape", r'"Linux\u001b]0;owned\u0007"'),
                       ("RTL override", r'"Linux\u202e"'), ("NUL", r'"Linux\u0000"')):
        base = _activation(t.product, t.license_key)
        data = (json.dumps(base)[:-1] + ', "client": {"os": ' + raw + "}}").encode()
        answer = _send(http, "POST", f"{t.url}/v1/activations", data, {})
        tally.check(_json_4xx(answer) and answer.status_code == 400,
                    f"client os with {label}: HTTP {answer.status_code} {answer.text[:160]}")
    # Bytes that are not UTF-8 at all (in the email's place): 400, never 500.
    for label, raw_bytes in (("invalid UTF-8", b'"\xff\xfe@example.com"'),
                             ("overlong UTF-8 NUL", b'"\xc0\x80@example.com"'),
                             ("UTF-8 encoded surrogate", b'"\xed\xa0\x80@example.com"'),
                             ("truncated 4-byte sequence", b'"\xf0\x9f\x98@example.com"')):
        base = _activation(t.product, t.license_key, consent=True)
        data = json.dumps(base)[:-1].encode() + b', "email": ' + raw_bytes + b"}"
        answer = _send(http, "POST", f"{t.url}/v1/activations", data, {})
        tally.check(_json_4xx(answer), f"email with {label}: HTTP {answer.status_code} "
                                       f"{answer.text[:160]}")
    # The same strings where the admin API takes an email (a query) or a name (a body).
    admin = {"Authorization": f"Bearer {t.admin_key}"}
    for label, raw, _ in EMAILS:
        value = json.loads(raw.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
                           if "\\ud" not in raw else '"x"')
        answer = http.get(f"{t.url}/v1/admin/end-users", params={"email": value},
                          headers=admin, timeout=30)
        tally.check(answer.status_code < 500 and (answer.status_code == 200 or
                                                  _json_4xx(answer)),
                    f"end-user search for {label}: HTTP {answer.status_code} "
                    f"{answer.text[:160]}")
    for label, raw, _ in REGISTRATIONS[:6]:
        data = ('{"id": "bad-' + secrets.token_hex(3) + '", "name": ' +
                raw.split(":", 1)[1].rstrip("}").strip() + "}").encode("utf-8", "surrogatepass")
        answer = _send(http, "POST", f"{t.url}/v1/admin/products", data, admin)
        tally.check(answer.status_code in (200, 201) or _json_4xx(answer),
                    f"product name with {label}: HTTP {answer.status_code} {answer.text[:160]}")


def _admin_can_export(t: Target, http: requests.Session, answer: requests.Response) -> bool:
    """The vendor's export of what an accepted activation stored still works."""
    activation_id = answer.json()["activation_id"]
    admin = {"Authorization": f"Bearer {t.admin_key}"}
    for lic in http.get(f"{t.url}/v1/admin/licenses", params={"product": t.product},
                        headers=admin, timeout=30).json()["licenses"]:
        listed = http.get(f"{t.url}/v1/admin/licenses/{lic['id']}/activations",
                          headers=admin, timeout=30)
        if listed.status_code != 200:
            return False
        for a in listed.json()["activations"]:
            if a["id"] == activation_id and a.get("end_user_id"):
                exported = http.get(f"{t.url}/v1/admin/end-users/{a['end_user_id']}",
                                    headers=admin, timeout=30)
                return exported.status_code == 200
    return True


# --------------------------------------------------------------------------- the run


def run(server: LocalServer, *, rounds: int, depths: list[int], tally: Tally) -> None:
    """Every case against ``server``; its memory checked after a warm-up and at the end."""
    t = make_target(server)
    with requests.Session() as http:
        # Warm-up: one of each, so that caches and pools are filled before measuring.
        oversized(t, http, Tally("warm-up"), 1)
        deep_nesting(t, http, Tally("warm-up"), depths[:1])
        before = server.rss_bytes()
        oversized(t, http, tally, rounds)
        deep_nesting(t, http, tally, depths)
        wrong_types(t, http, tally)
        unicode_fields(t, http, tally)
        after = server.rss_bytes()
        health = http.get(f"{t.url}/v1/health", timeout=30)
    tally.check(health.status_code == 200, f"health afterwards: HTTP {health.status_code}")
    tally.check(after - before <= RSS_MARGIN,
                f"server memory grew from {before // MB} MiB to {after // MB} MiB "
                f"(allowed {RSS_MARGIN // MB} MiB)")
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    tally.check("Traceback" not in log, "a traceback in the server log:\n" +
                log[log.find("Traceback"):][:1500])


@pytest.fixture(scope="module")
def bad_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("bad-bodies"), log_level="warning") as srv:
        yield srv


def test_oversized_malformed_and_unicode_bodies(bad_server: LocalServer) -> None:
    tally = Tally("bad bodies")
    run(bad_server, rounds=1, depths=[1000, 30_000], tally=tally)
    tally.assert_clean()


def test_rss_reads_the_server_process(bad_server: LocalServer) -> None:
    rss = bad_server.rss_bytes()
    assert 10 * MB < rss < 2048 * MB


CheckFn = Callable[[Target, requests.Session, Tally], None]


def family(scale: Scale) -> Tally:
    """Short: each case once; long: 20 rounds of 10 MB bodies and nesting up to 100k levels."""
    tally = Tally("bad bodies")
    with tempfile.TemporaryDirectory(prefix="sdna-bad-") as folder, \
            LocalServer(Path(folder), log_level="warning") as srv:
        run(srv, rounds=scale.pick(1, 20),
            depths=[1000, 30_000] if scale is Scale.SHORT else [1000, 10_000, 30_000, 100_000,
                                                                400_000], tally=tally)
    return tally


# --------------------------------------------------------------------------- the byte scan


def _shape(value: Any, depth: int = 1) -> tuple[int, int, int]:
    """(containers, object members, deepest nesting) of a parsed JSON value."""
    if isinstance(value, dict):
        items: list[Any] = list(value.values())
        members = len(value)
    elif isinstance(value, list):
        items, members = value, 0
    else:
        return 0, 0, 0
    containers, deepest = 1, depth
    for item in items:
        c, m, d = _shape(item, depth + 1)
        containers += c
        members += m
        deepest = max(deepest, d)
    return containers, members, deepest


#: Strings full of what could fool a byte scan: brackets, quotes, backslashes, escapes.
_TRICKY = st.text(alphabet=st.sampled_from(list('[]{}"\\/ab\u00e9\u2028\U0001f600\n:,')),
                  max_size=12)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                allow_infinity=False) | _TRICKY
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=6) |
                     st.dictionaries(_TRICKY, inner, max_size=6), max_leaves=60)


def _encodings(value: Any) -> list[bytes]:
    return [json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode(),
            json.dumps(value, separators=(",", ":"), indent=None).encode(),
            json.dumps(value, indent=3).encode()]


def _nest(value: Any, levels: int) -> Any:
    for n in range(levels):
        value = [value] if n % 2 else {"k[\\\"{": value}
    return value


@settings(max_examples=400, deadline=None)
@given(_JSON, st.integers(min_value=0, max_value=40))
def test_scan_never_refuses_json_within_the_limits_and_always_refuses_over(
        value: Any, levels: int) -> None:
    value = _nest(value, levels)
    containers, members, deepest = _shape(value)
    within = containers <= MAX_CONTAINERS and members <= MAX_MEMBERS and deepest <= MAX_DEPTH
    for body in _encodings(value):
        assert json.loads(body) == value
        assert (refusal(body) is None) == within, (containers, members, deepest, body[:200])
    # The same document in any other encoding json.loads reads is refused, whatever its shape.
    for encoding in ("utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
                     "utf-32-be"):
        body = json.dumps(value, ensure_ascii=False).encode(encoding, "surrogatepass")
        assert refusal(body) is not None, (encoding, body[:40])


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=MAX_CONTAINERS - 5, max_value=MAX_CONTAINERS + 5), _TRICKY)
def test_scan_counts_containers_exactly(count: int, text: str) -> None:
    """Flat lists of ``count`` - 1 empty objects (plus the list): refused past 1,000."""
    body = json.dumps([{} if n % 2 else {"s": text} for n in range(count - 1)]).encode()
    assert (refusal(body) is None) == (count <= MAX_CONTAINERS)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=MAX_MEMBERS - 5, max_value=MAX_MEMBERS + 5), _TRICKY)
def test_scan_counts_object_members_exactly(count: int, text: str) -> None:
    """Members spread over nested objects (keys and values full of colons and quotes)."""
    inner = {f"{text}:{n}": f'"{text}":' for n in range(count // 2)}
    body = json.dumps({**{f"k{n}:": text for n in range(count - len(inner) - 1)},
                       "inner": inner}).encode()
    assert (refusal(body) is None) == (count <= MAX_MEMBERS)


def test_flat_object_of_thousands_of_unknown_keys_is_refused_by_the_scan() -> None:
    """One object, 6,000 unknown keys: refused before the models build an error per key."""
    body = ("{" + ",".join(f'"k{i}":0' for i in range(6000)) + "}").encode()
    assert refusal(body) == f"The body holds more than {MAX_MEMBERS:,} JSON object members; " \
                            "send a smaller document."


@pytest.mark.parametrize("body", [
    b"\xef\xbb\xbf{}", "{}".encode("utf-16"), "{}".encode("utf-16-be"), "{}".encode("utf-32"),
    '{"a": "\u00e9"}'.encode("utf-32-be"), b'{"a": "\xff"}', b'{"a": "\xc0\x80"}',
    b'{"a": "\x00"}', b"\x00",
], ids=["utf-8 BOM", "utf-16", "utf-16-be", "utf-32", "utf-32-be", "invalid utf-8",
        "overlong NUL", "raw NUL", "NUL alone"])
def test_scan_refuses_bodies_that_are_not_utf8(body: bytes) -> None:
    assert refusal(body) is not None


def test_container_bomb_is_refused_before_it_is_parsed(bad_server: LocalServer) -> None:
    """``[{},{},...]``: 400 from the scan (1 MiB to admin with the key; 60 kB public)."""
    bomb = b"[" + b"{}," * (MB // 3 - 1) + b"{}]"
    deep = b"[" * 33 + b"]" * 33
    admin = {"Authorization": f"Bearer {bad_server.admin_key}", "Content-Type": "application/json"}
    for body, words in ((bomb, "1,000"), (deep, "deeper than 32")):
        answer = requests.post(f"{bad_server.url}/v1/admin/products", data=body, headers=admin,
                               timeout=30)
        assert answer.status_code == 400 and _json_4xx(answer), answer.text
        assert answer.json()["error"]["code"] == "invalid_request"
        assert words in answer.json()["error"]["message"]
    public = requests.post(f"{bad_server.url}/v1/activations", data=bomb[:60_000] + b"{}]",
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert public.status_code == 400 and _json_4xx(public), public.text
    assert "1,000" in public.json()["error"]["message"]
