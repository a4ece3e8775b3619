"""The chart's memory-only crop key store (keystore.deploy.enabled) and the key-store env of the services."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from .conftest import CHART, NAMESPACE, RELEASE, Profile, build_profile


def _render(rc: ModuleType, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    values = rc.merge_values(rc.load_values([CHART / "values-production.yaml"]), overrides)
    return rc.objects(rc.render(values, release=RELEASE, namespace=NAMESPACE))


def _named(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [obj] = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _env(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    pod = _named(objs, "Deployment" if name != "lfr-ingest" else "StatefulSet", name)["spec"]["template"]
    return {e["name"]: e for e in pod["spec"]["containers"][0].get("env", [])}


@pytest.fixture(scope="module")
def deployed(rc: ModuleType) -> list[dict[str, Any]]:
    return _render(rc, {"keystore": {"url": "", "deploy": {"enabled": True}}})


def test_key_store_pod_never_writes_to_disk(rc: ModuleType, deployed: list[dict[str, Any]]) -> None:
    errors, _ = rc.validate(deployed)
    assert errors == []
    dep = _named(deployed, "Deployment", "lfr-keystore")
    assert dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    [c] = pod["containers"]
    args = c["args"]
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    renamed = {args[i + 1] for i, a in enumerate(args) if a == "--rename-command" and args[i + 2] == ""}
    assert {"SAVE", "BGSAVE", "BGREWRITEAOF", "REPLICAOF", "CONFIG"} <= renamed
    assert "--requirepass" in args and c["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "lfr-keystore-auth"
    assert [v["emptyDir"]["medium"] for v in pod["volumes"]] == ["Memory"]
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"]
    assert not [o for o in deployed if o["kind"] == "PersistentVolumeClaim"]


def test_only_ingest_and_embedder_reach_the_key_store(deployed: list[dict[str, Any]]) -> None:
    url = "redis://lfr-keystore:6379/0"
    assert _env(deployed, "lfr-ingest")["LFR_REDIS__KEYSTORE_URL"]["value"] == url
    assert _env(deployed, "lfr-embedder")["LFR_REDIS__KEYSTORE_URL"]["value"] == url
    for other in ("lfr-alerting", "lfr-api"):
        assert "LFR_REDIS__KEYSTORE_URL" not in _env(deployed, other)
    policy = _named(deployed, "NetworkPolicy", "lfr-keystore")["spec"]
    peers = [
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in policy["ingress"][0]["from"]
    ]
    assert peers == ["ingest", "embedder"] and policy["egress"] == []


def test_external_key_store_from_production_values(rc: ModuleType) -> None:
    production: Profile = build_profile(rc, "production")
    assert not [o for o in production.objects if o["metadata"]["name"] == "lfr-keystore"]
    env = _env(production.objects, "lfr-embedder")
    assert env["LFR_REDIS__KEYSTORE_URL"]["value"].startswith("redis://lfr-keystore.redis-keystore")
    assert env["LFR_REDIS__KEYSTORE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "lfr-keystore-auth"


def test_url_and_deploy_together_are_refused(rc: ModuleType) -> None:
    with pytest.raises(Exception, match="exclusive"):
        _render(rc, {"keystore": {"deploy": {"enabled": True}}})  # production values set url
