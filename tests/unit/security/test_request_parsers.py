"""Parsers of request and message fields under hypothesis: multipart bodies of retrospective search, bearer
tokens from headers and query strings, webhook signature headers, and the live stream's pub/sub messages.
Each returns a value or its own clear refusal, never another exception."""

from __future__ import annotations

import json

from fastapi import HTTPException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfr.alerting.stream import clean_event
from lfr.api.limits import bearer_token
from lfr.api.routes_search import parse_multipart
from lfr.client.webhooks import sign, verify_signature

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def _part(name: bytes, filename: bytes | None, payload: bytes) -> bytes:
    disp = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        disp += b'; filename="' + filename + b'"'
    return disp + b"\r\n\r\n" + payload


@FAST
@given(
    ctype=st.sampled_from(["multipart/form-data; boundary=BOUND", "multipart/form-data", "text/plain", ""]),
    parts=st.lists(
        st.tuples(st.binary(max_size=12), st.none() | st.binary(max_size=20), st.binary(max_size=80)),
        max_size=4,
    ),
    tail=st.binary(max_size=40),
)
def test_multipart_parser(ctype: str, parts: list[tuple[bytes, bytes | None, bytes]], tail: bytes) -> None:
    body = b"".join(b"--BOUND\r\n" + _part(*p) + b"\r\n" for p in parts) + b"--BOUND--\r\n" + tail
    try:
        fields, files = parse_multipart(ctype, body)
    except HTTPException as exc:
        assert exc.status_code == 422
        return
    assert ctype.startswith("multipart/form-data; boundary=")
    assert all(isinstance(v, str) for vs in fields.values() for v in vs)
    assert all(isinstance(f.data, bytes) and isinstance(f.filename, str) for _, f in files)


@FAST
@given(auth=st.binary(max_size=80), query=st.binary(max_size=80))
def test_bearer_token_from_any_header_and_query(auth: bytes, query: bytes) -> None:
    scope = {"type": "http", "headers": [(b"authorization", auth)], "query_string": query}
    token = bearer_token(scope)
    assert token is None or (isinstance(token, str) and token)


@FAST
@given(body=st.binary(max_size=200), ts=st.none() | header_text, sig=st.none() | header_text)
def test_signature_check_on_arbitrary_headers(body: bytes, ts: str | None, sig: str | None) -> None:
    assert verify_signature("secret", body, ts, sig, now=1_800_000_000) in (True, False)
    if ts is not None and ts.isdigit():
        assert verify_signature("secret", body, ts, sign("secret", ts, body), now=int(ts))


@FAST
@given(doc=st.dictionaries(st.text(max_size=10), st.text(max_size=30) | st.integers(), max_size=5))
def test_stream_events_are_one_line_and_lossless(doc: dict[str, object]) -> None:
    out = clean_event(json.dumps(doc).encode())
    assert out is not None and "\n" not in out and "\r" not in out and json.loads(out) == doc


@FAST
@given(data=st.binary(max_size=200))
def test_stream_events_from_arbitrary_bytes(data: bytes) -> None:
    out = clean_event(data)
    assert out is None or ("\n" not in out and isinstance(json.loads(out), dict))
