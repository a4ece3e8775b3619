from __future__ import annotations

from pathlib import Path

import pytest

from lfr.core.config import SECRET_MASK, ConfigError, load_settings, masked_dump


def test_env_beats_yaml_and_nesting_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "lfr.yaml"
    cfg.write_text("kafka:\n  crops_partitions: 24\n  bootstrap_servers: a:1\nembedder:\n  top_k: 5\n")
    monkeypatch.setenv("LFR_KAFKA__CROPS_PARTITIONS", "12")
    s = load_settings(cfg)
    assert s.kafka.crops_partitions == 12
    assert s.kafka.bootstrap_servers == "a:1"
    assert s.embedder.top_k == 5


def test_invalid_settings_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFR_CRYPTO__KEY_TTL_S", "not-a-number")
    with pytest.raises(ConfigError, match=r"crypto\.key_ttl_s"):
        load_settings()


def test_ttl_must_outlive_rotation() -> None:
    with pytest.raises(ConfigError, match="key_ttl_s must be longer"):
        load_settings(crypto={"key_ttl_s": 10, "key_rotation_s": 30})


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "lfr.yaml"
    cfg.write_text("kafak: {}\n")
    with pytest.raises(ConfigError, match="kafak"):
        load_settings(cfg)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_secrets_are_masked() -> None:
    s = load_settings(
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "u",
            "sasl_password": "hunter2",
        },
        api={"api_keys": [{"name": "ops", "key": "k-secret", "roles": ["operator"]}]},
    )
    dump = masked_dump(s)
    text = str(dump)
    assert "hunter2" not in text and "k-secret" not in text
    assert dump["kafka"]["sasl_password"] == SECRET_MASK
    assert dump["api"]["api_keys"][0]["key"] == SECRET_MASK


def test_sasl_needs_credentials() -> None:
    with pytest.raises(ConfigError, match="SASL"):
        load_settings(kafka={"security_protocol": "SASL_SSL"})


def test_endpoints_without_stack_say_what_to_do(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    with pytest.raises(ConfigError, match="lfr stack up"):
        _ = s.kafka_bootstrap


def test_config_show_masks_secrets_and_bad_settings_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from lfr.cli import app
    from lfr.core.config import get_settings

    runner = CliRunner()
    monkeypatch.setenv("LFR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LFR_KAFKA__SASL_PASSWORD", "s3cret-value")
    get_settings.cache_clear()
    try:
        r = runner.invoke(app, ["config", "show"])
        assert r.exit_code == 0, r.output
        assert "s3cret-value" not in r.output and SECRET_MASK in r.output
        monkeypatch.setenv("LFR_CRYPTO__KEY_TTL_S", "-5")
        get_settings.cache_clear()
        r = runner.invoke(app, ["config", "show"])
        assert r.exit_code == 2 and "crypto.key_ttl_s" in r.output
    finally:
        get_settings.cache_clear()


def test_pnet_threshold_per_pyramid_level() -> None:
    s = load_settings(detector={"thresholds": [0.6, 0.7, 0.7], "first_level_thresholds": [0.8, 0.7]})
    assert [s.detector.pnet_threshold(i) for i in range(4)] == [0.8, 0.7, 0.6, 0.6]
    reference = load_settings(detector={"first_level_thresholds": []})
    assert reference.detector.pnet_threshold(0) == reference.detector.thresholds[0]


@pytest.mark.parametrize("field", ["thresholds", "first_level_thresholds"])
def test_detector_thresholds_must_be_probabilities(field: str) -> None:
    value = [0.6, 1.5, 0.7] if field == "thresholds" else [-0.1]
    with pytest.raises(ConfigError, match="outside"):
        load_settings(detector={field: value})
