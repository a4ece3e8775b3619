from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from lfr.core.config import load_settings
from lfr.core.crypto import AlertMasterKey, DecryptFailed, crop_aad, open_blob, probe_aad, seal


def test_seal_binds_associated_data() -> None:
    key = os.urandom(32)
    blob = seal("k1", key, b"jpeg-bytes", crop_aad("c", "cam", "d"))
    assert b"jpeg-bytes" not in blob.ciphertext
    assert open_blob(key, blob, crop_aad("c", "cam", "d")) == b"jpeg-bytes"
    with pytest.raises(DecryptFailed):
        open_blob(key, blob, crop_aad("c", "cam", "other-deployment"))
    with pytest.raises(DecryptFailed):
        open_blob(os.urandom(32), blob, crop_aad("c", "cam", "d"))


def test_alert_key_from_settings_and_generated(tmp_path: Path) -> None:
    raw = os.urandom(32)
    k = AlertMasterKey(load_settings(data_dir=tmp_path, crypto={"alert_key": base64.b64encode(raw).decode()}))
    blob = k.seal(b"probe", probe_aad("h", "d"))
    assert k.open(blob, probe_aad("h", "d")) == b"probe"
    generated = AlertMasterKey(load_settings(data_dir=tmp_path / "x"))
    again = AlertMasterKey(load_settings(data_dir=tmp_path / "x"))
    assert again.open(generated.seal(b"p", b"a"), b"a") == b"p"
    assert oct((tmp_path / "x" / "secrets" / "alert.key").stat().st_mode)[-3:] == "600"
    with pytest.raises(ValueError, match="32 bytes"):
        AlertMasterKey(
            load_settings(data_dir=tmp_path, crypto={"alert_key": base64.b64encode(b"short").decode()})
        )


def test_rotated_alert_key_still_opens_probes_within_retention(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = AlertMasterKey(
        load_settings(
            data_dir=tmp_path,
            crypto={"alert_key": base64.b64encode(old).decode(), "alert_key_id": "alert-v1"},
        )
    )
    blob = before.seal(b"probe", probe_aad("h", "d"))
    after = AlertMasterKey(
        load_settings(
            data_dir=tmp_path,
            crypto={
                "alert_key": base64.b64encode(new).decode(),
                "alert_key_id": "alert-v2",
                "previous_alert_keys": {"alert-v1": base64.b64encode(old).decode()},
            },
        )
    )
    assert after.open(blob, probe_aad("h", "d")) == b"probe"
    assert after.seal(b"x", b"a").key_id == "alert-v2"
    forgot = AlertMasterKey(
        load_settings(
            data_dir=tmp_path,
            crypto={"alert_key": base64.b64encode(new).decode(), "alert_key_id": "alert-v2"},
        )
    )
    with pytest.raises(DecryptFailed, match="retired"):
        forgot.open(blob, probe_aad("h", "d"))
