"""The webhook receiver's side: the reference verifier printed in docs/security.md (run from the document
itself) and lfr.client.webhooks.verify_request, against requests signed by LFR's own `sign`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lfr.alerting.webhooks import envelope
from lfr.client.webhooks import (
    DEFAULT_TOLERANCE_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    sign,
    verify_request,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"
SECRET = b"whsec-test-3f9a"
NOW = 1_800_000_000


def _doc_verifier() -> Any:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    [code] = [b for b in blocks if "class WebhookVerifier" in b]
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), scope)  # the document's code, exactly as a receiver copies it
    return scope["WebhookVerifier"]


def _request(ts: int, body: bytes | None = None) -> tuple[bytes, str, str]:
    raw = body if body is not None else envelope("created", {"alert_id": "a1", "revision": 1}).encode()
    return raw, str(ts), sign(SECRET, ts, raw)


def test_documented_verifier_accepts_once_and_refuses_the_rest() -> None:
    verifier = _doc_verifier()(SECRET)
    body, ts, sig = _request(NOW)
    assert verifier.accept(body, ts, sig, now=NOW + 1)
    assert not verifier.accept(body, ts, sig, now=NOW + 2), "a replay within the window"
    retry_body, retry_ts, retry_sig = _request(NOW + 30, body)  # LFR's retry: same body, new timestamp
    assert verifier.accept(retry_body, retry_ts, retry_sig, now=NOW + 31)
    assert not verifier.accept(body + b" ", ts, sig, now=NOW + 1), "altered body"
    assert not verifier.accept(body, str(NOW + 1), sig, now=NOW + 1), "timestamp moved"
    assert not verifier.accept(body, ts, "sha256=" + "0" * 64, now=NOW + 1), "forged signature"
    old_body, old_ts, old_sig = _request(NOW - DEFAULT_TOLERANCE_S - 1)
    assert not verifier.accept(old_body, old_ts, old_sig, now=NOW), "stale"
    future = _request(NOW + DEFAULT_TOLERANCE_S + 1)
    assert not verifier.accept(*future, now=NOW), "from the future"
    for ts_bad, sig_bad in ((None, sig), (ts, None), ("soon", sig), ("", sig)):
        assert not verifier.accept(body, ts_bad, sig_bad, now=NOW)
    assert not _doc_verifier()(b"other secret").accept(*_request(NOW), now=NOW)


def test_documented_verifier_forgets_what_the_time_check_refuses_anyway() -> None:
    verifier = _doc_verifier()(SECRET)
    for i in range(50):
        assert verifier.accept(*_request(NOW + i), now=NOW + i)
    assert len(verifier.seen) == 50
    later = NOW + 49 + DEFAULT_TOLERANCE_S + 1
    assert verifier.accept(*_request(later), now=later)
    assert len(verifier.seen) == 1, "memory is bounded by the window, not by history"


@pytest.mark.parametrize("header_case", [str.lower, str.upper, lambda s: s])
def test_verify_request_and_replay_guard(header_case: Any) -> None:
    guard = ReplayGuard()
    body, ts, sig = _request(NOW)
    headers = {header_case(TIMESTAMP_HEADER): ts, header_case(SIGNATURE_HEADER): sig}
    assert verify_request(SECRET, body, headers, guard, now=NOW)
    assert not verify_request(SECRET, body, headers, guard, now=NOW + 10)
    assert not verify_request(SECRET, body, {}, guard, now=NOW)
    assert not verify_request(SECRET, b"x" + body, headers, ReplayGuard(), now=NOW)
    assert len(guard) == 1


def test_the_documented_verifier_and_lfrs_agree() -> None:
    """Both implementations take the same decisions on the same stream of requests."""
    doc, guard = _doc_verifier()(SECRET), ReplayGuard()
    stream = [_request(NOW), _request(NOW), _request(NOW + 1), _request(NOW - 400), _request(NOW + 2)]
    stream.append((stream[2][0] + b"!", stream[2][1], stream[2][2]))
    for body, ts, sig in stream:
        theirs = doc.accept(body, ts, sig, now=NOW + 5)
        ours = verify_request(SECRET, body, {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sig}, guard, now=NOW + 5)
        assert theirs == ours
