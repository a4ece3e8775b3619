"""The Helm chart, rendered offline for every values profile, linted, schema-validated and held to the
deployment invariants: hardened pods, resources, probes, pinned images, default-deny networking, secrets only
by reference, autoscaling within partition limits, and settings that the services actually understand."""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from .conftest import CHART, KUBE_VERSION, Profile

CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule", "KafkaTopic"}
SERVICES = ("ingest", "embedder", "alerting", "api", "monitor")
CONSUMERS = {  # component -> (topic, consumer group, partitions value key)
    "embedder": ("lfr.crops.v1", "lfr-embedder", "crops"),
    "alerting": ("lfr.hits.v1", "lfr-alerting", "hits"),
}
VALUES_KEYS = {"gallery-import": "galleryImport"}  # component label -> values key, where they differ


# Invariant checkers: each returns a list of violations, so the negative tests below can prove they bite. ---


def workload_violations(rc: ModuleType, obj: Mapping[str, Any], health_port: int) -> list[str]:
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    spec = rc.pod_template(obj)["spec"]
    psc = spec.get("securityContext") or {}
    out: list[str] = []
    if psc.get("runAsNonRoot") is not True:
        out.append(f"{name}: pod securityContext.runAsNonRoot is not true")
    if psc.get("runAsUser") != 10001:
        out.append(f"{name}: pod securityContext.runAsUser is not 10001")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        out.append(f"{name}: pod seccompProfile is not RuntimeDefault")
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            out.append(f"{name}: {flag} is set")
    if spec.get("automountServiceAccountToken") is not False:
        out.append(f"{name}: automountServiceAccountToken is not false")
    for c in rc.containers(spec):
        cname = f"{name}[{c['name']}]"
        sc = c.get("securityContext") or {}
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{cname}: runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) in (0, None):
            out.append(f"{cname}: may run as root")
        if sc.get("privileged"):
            out.append(f"{cname}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{cname}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{cname}: readOnlyRootFilesystem is not true")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{cname}: capabilities do not drop ALL")
        if caps.get("add"):
            out.append(f"{cname}: adds capabilities {caps['add']}")
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if not (res.get(kind) or {}).get(r):
                    out.append(f"{cname}: resources.{kind}.{r} missing")
        image = c.get("image") or ""
        ref = image.split("@", 1)[0]
        tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else ""
        if not tag or tag == "latest":
            out.append(f"{cname}: image {image!r} has no pinned tag")
        is_main = c in (spec.get("containers") or [])
        if obj["kind"] in rc.LONG_RUNNING_KINDS and is_main:
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            if ports.get("health") != health_port:
                out.append(f"{cname}: no 'health' port {health_port}")
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = (c.get(probe) or {}).get("httpGet") or {}
                if get.get("path") != path or get.get("port") not in ("health", health_port):
                    out.append(f"{cname}: {probe} is not GET {path} on the health port")
    return out


def network_violations(rc: ModuleType, profile: Profile) -> list[str]:
    policies = profile.of_kind("NetworkPolicy")
    deny = [
        p
        for p in policies
        if set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    out = [] if deny else ["no default-deny NetworkPolicy (Ingress+Egress, no rules)"]
    for w in workloads(rc, profile):
        labels = rc.pod_template(w)["metadata"].get("labels") or {}
        name = f"{w['kind']}/{w['metadata']['name']}"
        selecting = [p for p in policies if rc.selector_matches(p["spec"]["podSelector"], labels)]
        hook_policies = [p for p in selecting if "helm.sh/hook" in (p["metadata"].get("annotations") or {})]
        if not any(p in deny for p in selecting) and not (w["kind"] == "Job" and hook_policies):
            out.append(f"{name}: not selected by the default-deny policy")
        allow = [p for p in selecting if p not in deny]
        if not allow:
            out.append(f"{name}: selected by no allow policy")
        egress_ports = {
            (str(pt.get("port")), pt.get("protocol", "TCP"))
            for p in allow
            for rule in p["spec"].get("egress") or []
            for pt in rule.get("ports") or []
        }
        if ("53", "UDP") not in egress_ports:
            out.append(f"{name}: no DNS egress")
        for p in allow:
            for direction in ("ingress", "egress"):
                for rule in p["spec"].get(direction) or []:
                    if not rule:
                        out.append(f"{p['metadata']['name']}: an empty {direction} rule allows everything")
    return out


# Helpers ---------------------------------------------------------------------------------------------------


def workloads(rc: ModuleType, profile: Profile) -> list[dict[str, Any]]:
    return [o for o in profile.objects if o["kind"] in rc.WORKLOAD_KINDS]


def component(obj: Mapping[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def values_of(profile: Profile, name: str) -> dict[str, Any]:
    """A component's values (the gallery import worker is configured under ``galleryImport``)."""
    return profile.merged[VALUES_KEYS.get(name, name)]


def main_container(rc: ModuleType, obj: Mapping[str, Any]) -> dict[str, Any]:
    return rc.pod_template(obj)["spec"]["containers"][0]


def env_of(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def secret_ref(entry: Mapping[str, Any]) -> tuple[str, str] | None:
    ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
    return (ref["name"], ref["key"]) if ref else None


def mounted_file(
    rc: ModuleType, obj: Mapping[str, Any], container: Mapping[str, Any], path: str
) -> tuple[str, str]:
    """(secret or configmap name, key) that provides `path` inside `container`; fails if nothing does."""
    spec = rc.pod_template(obj)["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for m in container.get("volumeMounts") or []:
        prefix = m["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            key = path[len(prefix) :]
            vol = volumes[m["name"]]
            source = vol.get("secret") or vol.get("configMap")
            assert source, f"{path} is mounted from {vol}, not a Secret or ConfigMap"
            items = source.get("items")
            if items:
                assert key in {i["path"] for i in items}, f"{path}: {key} not among the projected items"
                key = next(i["key"] for i in items if i["path"] == key)
            return source.get("secretName") or source.get("name"), key
    raise AssertionError(f"{path} is not mounted in {obj['metadata']['name']}[{container['name']}]")


# Lint and schema validation --------------------------------------------------------------------------------


def test_lint_strict(rc: ModuleType, profile: Profile) -> None:
    assert rc.lint(profile.values, kube_version=KUBE_VERSION) == []


def _newest_bundled_kubernetes() -> str:
    from kubernetes_validate import utils

    return str(utils.major_minor(utils.latest_version()))


@pytest.mark.parametrize("kube_version", [KUBE_VERSION, "newest"])
def test_builtin_objects_validate_against_pinned_kubernetes(
    rc: ModuleType, profile: Profile, kube_version: str
) -> None:
    kube_version = _newest_bundled_kubernetes() if kube_version == "newest" else kube_version
    errors, skipped = rc.validate(profile.objects, kube_version=kube_version)
    assert errors == []
    assert {o["kind"] for o in skipped} <= CRD_KINDS


def test_validator_rejects_a_broken_object(rc: ModuleType, default: Profile) -> None:
    dep = copy.deepcopy(default.named("Deployment", "lfr-embedder"))
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    errors, _ = rc.validate([dep], kube_version=KUBE_VERSION)
    assert any("readOnlyRootFileSystem" in e for e in errors)
    errors, _ = rc.validate(
        [{"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "x"}}],
        kube_version=KUBE_VERSION,
    )
    assert errors, "an API removed in the pinned Kubernetes version must be reported"


def test_renders_every_service(rc: ModuleType, profile: Profile) -> None:
    kinds = {(o["kind"], component(o)) for o in workloads(rc, profile)}
    assert ("StatefulSet", "ingest") in kinds
    for name in ("embedder", "alerting", "api"):
        assert ("Deployment", name) in kinds
    commands = {component(w): main_container(rc, w)["args"] for w in workloads(rc, profile)}
    assert commands["ingest"] == ["ingest"] and commands["embedder"] == ["embed"]
    assert commands["alerting"] == ["alert"] and commands["api"] == ["api"]


# Workload invariants ---------------------------------------------------------------------------------------


def test_workload_invariants(rc: ModuleType, profile: Profile) -> None:
    port = profile.merged["observability"]["healthPort"]
    violations = [v for w in workloads(rc, profile) for v in workload_violations(rc, w, port)]
    assert violations == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s, c: c.pop("securityContext"), "readOnlyRootFilesystem is not true"),
        (lambda s, c: c["securityContext"].update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem"),
        (lambda s, c: c["securityContext"].update(privileged=True), "privileged"),
        (lambda s, c: c["securityContext"]["capabilities"].update(drop=[]), "drop ALL"),
        (lambda s, c: s["securityContext"].pop("runAsNonRoot"), "runAsNonRoot is not true"),
        (lambda s, c: c["resources"].pop("limits"), "resources.limits.cpu missing"),
        (lambda s, c: c.pop("readinessProbe"), "readinessProbe"),
        (lambda s, c: c.update(image="lfr:latest"), "no pinned tag"),
        (lambda s, c: c.update(image="registry:5000/lfr"), "no pinned tag"),
        (lambda s, c: s.update(automountServiceAccountToken=True), "automountServiceAccountToken"),
    ],
)
def test_workload_invariants_catch_regressions(
    rc: ModuleType, default: Profile, mutate: Any, expected: str
) -> None:
    dep = copy.deepcopy(default.named("Deployment", "lfr-api"))
    spec = dep["spec"]["template"]["spec"]
    mutate(spec, spec["containers"][0])
    assert any(expected in v for v in workload_violations(rc, dep, 9400))


def test_images_default_to_app_version(rc: ModuleType, profile: Profile) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for w in workloads(rc, profile):
        for c in rc.containers(rc.pod_template(w)["spec"]):
            tag = c["image"].split("@")[0].rsplit(":", 1)[1]
            assert tag in (app_version, f"{app_version}-cuda"), c["image"]


@pytest.mark.parametrize("values", [{"image": {"tag": "latest"}}, {"embedder": {"image": {"tag": "latest"}}}])
def test_latest_tag_is_refused(rc: ModuleType, values: dict[str, Any]) -> None:
    from helm_python import HelmRenderError

    with pytest.raises(HelmRenderError, match="latest"):
        rc.render(values)


def test_config_checksum_rolls_only_the_pods_that_read_the_change(rc: ModuleType) -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str]:
        return {
            component(w): rc.pod_template(w)["metadata"]["annotations"]["checksum/config"]
            for w in rc.objects(rc.render(values))
            if w["kind"] in rc.LONG_RUNNING_KINDS
        }

    base = checksums({})
    cameras = checksums({"ingest": {"cameras": [{"id": "cam-1", "url": "rtsp://10.1.2.3/stream"}]}})
    settings = checksums({"settings": {"embedder": {"batch_size": 16}}})
    assert {n for n in base if cameras[n] != base[n]} == {"ingest"}
    assert {n for n in base if settings[n] != base[n]} == set(SERVICES)


def test_service_account_does_not_mount_a_token(profile: Profile) -> None:
    for sa in profile.of_kind("ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_long_running_services_have_pdbs(rc: ModuleType, profile: Profile) -> None:
    pdbs = profile.of_kind("PodDisruptionBudget")
    for w in workloads(rc, profile):
        if w["kind"] not in rc.LONG_RUNNING_KINDS or not values_of(profile, component(w))["pdb"]["enabled"]:
            continue
        labels = rc.pod_template(w)["metadata"]["labels"]
        assert any(rc.selector_matches(p["spec"]["selector"], labels) for p in pdbs), w["metadata"]["name"]


# Networking ------------------------------------------------------------------------------------------------


def test_network_policies(rc: ModuleType, profile: Profile) -> None:
    assert network_violations(rc, profile) == []


def test_network_policy_checker_catches_regressions(rc: ModuleType, default: Profile) -> None:
    objs = [o for o in default.objects if o["metadata"]["name"] != "lfr-default-deny"]
    broken = Profile("broken", {}, default.merged, {}, objs)
    assert any("no default-deny" in v for v in network_violations(rc, broken))
    objs = [
        o
        for o in default.objects
        if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "lfr-api")
    ]
    broken = Profile("broken", {}, default.merged, {}, objs)
    assert "Deployment/lfr-api: selected by no allow policy" in network_violations(rc, broken)


def _egress_ports(profile: Profile, name: str) -> set[int]:
    policy = profile.named("NetworkPolicy", name)
    return {pt["port"] for rule in policy["spec"]["egress"] for pt in rule.get("ports") or []}


def test_each_service_reaches_only_its_backends(production: Profile) -> None:
    v = production.merged["networkPolicy"]
    port = {
        flow: {p["port"] for p in v[flow]["ports"]}
        for flow in ("kafka", "redis", "milvus", "cameras", "webhooks")
    }
    assert port["kafka"] | port["redis"] | port["cameras"] <= _egress_ports(production, "lfr-ingest")
    assert not port["milvus"] & _egress_ports(production, "lfr-ingest")
    assert port["milvus"] <= _egress_ports(production, "lfr-embedder")
    assert not port["milvus"] & _egress_ports(production, "lfr-alerting")
    assert port["webhooks"] <= _egress_ports(production, "lfr-alerting")
    assert port["milvus"] <= _egress_ports(production, "lfr-api")
    # Only the api accepts traffic on its HTTP port; everything accepts scrapes on the health port only.
    for name in SERVICES:
        rules = production.named("NetworkPolicy", f"lfr-{name}")["spec"]["ingress"]
        ports = {pt["port"] for r in rules for pt in r["ports"]}
        assert ports == ({"health", "http"} if name == "api" else {"health"})
        assert all(r.get("from") for r in rules), "production ingress rules must name their peers"


def test_allow_all_egress_rule_is_refused(rc: ModuleType) -> None:
    from helm_python import HelmRenderError

    with pytest.raises(HelmRenderError, match="allow all egress"):
        rc.render({"networkPolicy": {"kafka": {"to": [], "ports": []}}})


# Secrets and settings --------------------------------------------------------------------------------------

SECRET_WORDS = ("password", "token", "secret", "alertkey", "apikey", "privatekey", "jwtpublickeys")
# "<x>Key" fields name the key inside a Secret (passwordKey: password), they hold no secret themselves.
REFERENCE_PREFIXES = (*SECRET_WORDS, "apikeys", "username", "ca", "cert", "key", "alertkey")


def _is_reference(norm: str) -> bool:
    return (
        norm.endswith("existingsecret")
        or norm == "secretname"
        or (norm.endswith("key") and norm[:-3].endswith(REFERENCE_PREFIXES))
    )


def _literal_secrets(values: Any, path: str = "") -> list[str]:
    """Paths of values that look like credentials written inline."""
    found: list[str] = []
    if isinstance(values, Mapping):
        for key, value in values.items():
            p = f"{path}.{key}" if path else str(key)
            norm = str(key).lower().replace("_", "").replace("-", "")
            if (
                isinstance(value, str)
                and value
                and any(w in norm for w in SECRET_WORDS)
                and not _is_reference(norm)
            ):
                found.append(p)
            found += _literal_secrets(value, p)
    elif isinstance(values, list):
        for i, item in enumerate(values):
            found += _literal_secrets(item, f"{path}[{i}]")
    return found


def test_literal_secret_detector() -> None:
    inline = {
        "redis": {"password": "hunter2"},
        "crypto": {"alertKey": "AAAA"},
        "milvus": {"token": "t"},
        "alerting": {"webhooks": [{"secret": "s"}]},
    }
    assert _literal_secrets(inline) == [
        "redis.password",
        "crypto.alertKey",
        "milvus.token",
        "alerting.webhooks[0].secret",
    ]
    references = {
        "kafka": {"sasl": {"existingSecret": "s", "passwordKey": "password"}},
        "crypto": {"alertKeyKey": "alert-key"},
        "api": {"auth": {"jwtPublicKeysKey": "k"}},
        "ingress": {"tls": [{"secretName": "tls"}]},
    }
    assert _literal_secrets(references) == []


@pytest.mark.parametrize("values_file", ["values.yaml", "values-dev.yaml", "values-production.yaml"])
def test_values_files_hold_no_secret_values(values_file: str) -> None:
    values = yaml.safe_load((CHART / values_file).read_text())
    assert _literal_secrets(values) == []


def test_chart_renders_no_secrets(profile: Profile) -> None:
    assert profile.of_kind("Secret") == []
    for o in profile.objects:
        for c in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for name, entry in env_of(c).items():
                if any(
                    w in name.lower().replace("_", "") for w in ("password", "token", "alertkey", "apikeys")
                ):
                    assert secret_ref(entry), f"{name} must come from a Secret"


def test_production_takes_tls_and_sasl_from_secrets(rc: ModuleType, production: Profile) -> None:
    v = production.values
    for w in workloads(rc, production):
        c = main_container(rc, w)
        env = env_of(c)
        assert env["LFR_KAFKA__SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["LFR_KAFKA__SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
        assert env["LFR_KAFKA__IDEMPOTENT_PRODUCER"]["value"] == "true"
        assert secret_ref(env["LFR_KAFKA__SASL_PASSWORD"]) == (
            v["kafka"]["sasl"]["existingSecret"],
            "password",
        )
        ca = env["LFR_KAFKA__SSL_CAFILE"]["value"]
        assert mounted_file(rc, w, c, ca) == (v["kafka"]["tls"]["existingSecret"], "ca.crt")
        if component(w) == "topics":
            continue
        sentinel = v["redis"]["sentinel"]
        assert "LFR_REDIS__URL" not in env
        assert json.loads(env["LFR_REDIS__SENTINELS"]["value"]) == sentinel["hosts"]
        assert env["LFR_REDIS__SENTINEL_MASTER"]["value"] == sentinel["master"]
        sentinel_auth = secret_ref(env["LFR_REDIS__SENTINEL_PASSWORD"])
        assert sentinel_auth == (sentinel["existingSecret"], "sentinel-password")
        assert env["LFR_REDIS__TLS"]["value"] == "true"
        ca_path = env["LFR_REDIS__TLS_CA_FILE"]["value"]
        assert mounted_file(rc, w, c, ca_path) == (v["redis"]["tls"]["existingSecret"], "ca.crt")
        assert secret_ref(env["LFR_REDIS__PASSWORD"]) == (v["redis"]["existingSecret"], "password")
        if component(w) in ("embedder", "api"):
            assert secret_ref(env["LFR_MILVUS__TOKEN"]) == (v["milvus"]["existingSecret"], "token")
            assert env["LFR_MILVUS__URI"]["value"].startswith("https://")
            milvus_ca = env["LFR_MILVUS__TLS_CA_FILE"]["value"]
            assert mounted_file(rc, w, c, milvus_ca) == (v["milvus"]["tls"]["existingSecret"], "ca.crt")
        else:
            assert "LFR_MILVUS__TOKEN" not in env, "least privilege: only embedder and api talk to Milvus"
        if component(w) not in ("ingest", "monitor"):
            assert secret_ref(env["LFR_CRYPTO__ALERT_KEY"]) == (v["crypto"]["existingSecret"], "alert-key")
        else:
            assert "LFR_CRYPTO__ALERT_KEY" not in env, "least privilege: counts need no alert key"
    api_env = env_of(main_container(rc, production.named("Deployment", "lfr-api")))
    assert secret_ref(api_env["LFR_API__JWT_PUBLIC_KEYS"]) == ("lfr-api-auth", "jwt-public-keys")
    ingest = production.named("StatefulSet", "lfr-ingest")
    cameras = env_of(main_container(rc, ingest))["LFR_INGEST__CAMERAS_FILE"]["value"]
    assert mounted_file(rc, ingest, main_container(rc, ingest), cameras) == ("lfr-cameras", "cameras.yaml")


def test_mutual_tls_and_secret_username(rc: ModuleType, all_features: Profile) -> None:
    for w in workloads(rc, all_features):
        c = main_container(rc, w)
        env = env_of(c)
        assert secret_ref(env["LFR_KAFKA__SASL_USERNAME"]) == ("lfr-kafka-sasl", "username")
        assert mounted_file(rc, w, c, env["LFR_KAFKA__SSL_CERTFILE"]["value"]) == ("lfr-kafka-ca", "user.crt")
        if component(w) != "topics":
            url = env["LFR_REDIS__URL"]["value"]
            assert url.startswith("rediss://") and "LFR_REDIS__SENTINELS" not in env
            ca_path = url.split("ssl_ca_certs=", 1)[1]
            assert mounted_file(rc, w, c, ca_path) == ("lfr-redis-ca", "ca.crt")
        assert mounted_file(rc, w, c, env["LFR_KAFKA__SSL_KEYFILE"]["value"]) == ("lfr-kafka-ca", "user.key")
        assert "@sha256:" in c["image"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"kafka": {"securityProtocol": "SASL_SSL", "saslMechanism": "SCRAM-SHA-512"}},
            "sasl.existingSecret",
        ),
        ({"kafka": {"securityProtocol": "SASL_SSL", "sasl": {"existingSecret": "s"}}}, "saslMechanism"),
        ({"kafka": {"securityProtocol": "TLS"}}, "securityProtocol"),
        ({"kafka": {"tls": {"existingSecret": "ca"}}}, "not SSL or SASL_SSL"),
        ({"redis": {"tls": {"existingSecret": "ca"}}}, "not rediss://"),
        ({"milvus": {"tls": {"existingSecret": "ca"}}}, "milvus.uri is not https://"),
        ({"kafka": {"strimzi": {"enabled": True}}}, "clusterName"),
        ({"crypto": {"existingSecret": ""}}, "crypto.existingSecret is required"),
    ],
)
def test_inconsistent_connection_values_are_refused(
    rc: ModuleType, values: dict[str, Any], message: str
) -> None:
    from helm_python import HelmRenderError

    with pytest.raises(HelmRenderError, match=message):
        rc.render(values)


def _settings_model() -> Any:
    config = pytest.importorskip("lfr.core.config", reason="the lfr package is not importable")
    return config


def _field_exists(model: Any, parts: list[str]) -> bool:
    from pydantic import BaseModel

    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i < len(parts) - 1:
            ann = field.annotation
            if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
                return False
            model = ann
    return True


def _unknown_yaml_keys(model: Any, data: Mapping[str, Any], path: str = "") -> list[str]:
    from pydantic import BaseModel

    bad = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            bad.append(f"{path}{key}")
        elif (
            isinstance(value, Mapping)
            and isinstance(field.annotation, type)
            and issubclass(field.annotation, BaseModel)
        ):
            bad += _unknown_yaml_keys(field.annotation, value, f"{path}{key}.")
    return bad


SECRET_SAMPLES = {  # what the referenced Secrets hold, in the shape the settings parse
    "LFR_API__JWT_PUBLIC_KEYS": json.dumps(["-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"]),
    "LFR_API__API_KEYS": json.dumps([{"name": "ci", "key": "k", "roles": ["operator"]}]),
    "LFR_ALERTING__WEBHOOKS": json.dumps([{"name": "cad", "url": "https://cad.example/hook", "secret": "s"}]),
    "LFR_CRYPTO__ALERT_KEY": base64.b64encode(bytes(32)).decode(),
}


def load_container_settings(
    config: Any, profile: Profile, container: Mapping[str, Any], tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The services' own settings loader fed exactly what the pod would give it."""
    for key in [k for k in os.environ if k.startswith("LFR_")]:
        monkeypatch.delenv(key)
    config_file = None
    for name, entry in env_of(container).items():
        if name == "LFR_CONFIG":
            cm = profile.named("ConfigMap", "lfr-config")
            config_file = tmp / "settings.yaml"
            config_file.write_text(cm["data"]["settings.yaml"])
            continue
        value = entry["value"] if "value" in entry else SECRET_SAMPLES.get(name, "from-a-secret")
        monkeypatch.setenv(name, str(value))
    config.get_settings.cache_clear()
    return config.load_settings(config_file)


def test_env_and_settings_file_match_the_services_settings(
    rc: ModuleType, profile: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _settings_model()
    settings_yaml = yaml.safe_load(profile.named("ConfigMap", "lfr-config")["data"]["settings.yaml"]) or {}
    assert _unknown_yaml_keys(config.Settings, settings_yaml) == []
    for w in workloads(rc, profile):
        for c in rc.containers(rc.pod_template(w)["spec"]):
            unknown = [
                n
                for n in env_of(c)
                if n.startswith("LFR_")
                and n != "LFR_CONFIG"
                and not _field_exists(config.Settings, n[4:].lower().split("__"))
            ]
            assert unknown == [], f"{w['metadata']['name']}[{c['name']}] sets env the settings ignore"
            s = load_container_settings(config, profile, c, tmp_path, monkeypatch)
            assert s.observability.health_port == profile.merged["observability"]["healthPort"]
            assert s.observability.health_host == "0.0.0.0"
            assert str(s.data_dir) == "/var/lib/lfr"
            if c["name"] == "models":  # the initContainer only builds models
                continue
            assert s.kafka.crops_partitions == profile.merged["kafka"]["partitions"]["crops"]
            if component(w) == "api":
                assert (s.api.host, s.api.port) == ("0.0.0.0", profile.merged["api"]["port"])
            if component(w) == "ingest":
                assert s.ingest.replicas == w["spec"]["replicas"]
                assert s.ingest.cameras_file is not None
                mounted_file(rc, w, c, str(s.ingest.cameras_file))


def test_unknown_env_names_are_detected() -> None:
    config = _settings_model()
    assert _field_exists(config.Settings, ["kafka", "ssl_cafile"])
    assert not _field_exists(config.Settings, ["kafka", "ssl_ca_file"])
    assert _unknown_yaml_keys(config.Settings, {"crypto": {"key_ttl": 1}}) == ["crypto.key_ttl"]


def test_gpu_embedders_use_cuda(rc: ModuleType, production: Profile) -> None:
    for w in workloads(rc, production):
        c = main_container(rc, w)
        provider = env_of(c).get("LFR_MODELS__EXECUTION_PROVIDER", {}).get("value")
        if component(w) == "embedder":
            assert provider == "cuda"
            assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
            assert c["image"].endswith("-cuda")
            tolerations = rc.pod_template(w)["spec"]["tolerations"]
            assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)
        else:
            assert provider in (None, "cpu")
            assert "nvidia.com/gpu" not in c["resources"]["limits"]


def test_models_build_at_startup(rc: ModuleType, all_features: Profile) -> None:
    for w in workloads(rc, all_features):
        spec = rc.pod_template(w)["spec"]
        c = spec["containers"][0]
        models_dir = env_of(c).get("LFR_MODELS__DIR", {}).get("value")
        if models_dir is None:
            assert not spec.get("initContainers")
            continue
        init = spec["initContainers"][0]
        assert init["args"] == ["models", "build"]
        assert env_of(init)["LFR_MODELS__DIR"]["value"] == models_dir
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["models"]
        assert any(m["mountPath"] == models_dir for m in init["volumeMounts"])
        assert any(m["mountPath"] == models_dir and m.get("readOnly") for m in c["volumeMounts"])


# Ingest sharding -------------------------------------------------------------------------------------------


def test_ingest_statefulset_shards_by_ordinal(rc: ModuleType, profile: Profile) -> None:
    sts = profile.named("StatefulSet", "lfr-ingest")
    svc = profile.named("Service", sts["spec"]["serviceName"])
    assert svc["spec"]["clusterIP"] == "None"
    assert rc.selector_matches(
        {"matchLabels": svc["spec"]["selector"]}, rc.pod_template(sts)["metadata"]["labels"]
    )
    env = env_of(main_container(rc, sts))
    assert int(env["LFR_INGEST__REPLICAS"]["value"]) == sts["spec"]["replicas"]
    assert "LFR_INGEST__REPLICA_ORDINAL" not in env, "the ordinal comes from the pod hostname"


# Topics: hook Job or Strimzi, and the table agrees with lfr.core.topics ------------------------------------


def test_topics_job_is_a_pre_install_hook(rc: ModuleType, profile: Profile) -> None:
    jobs = profile.of_kind("Job")
    if profile.merged["kafka"]["strimzi"]["enabled"]:
        assert jobs == []
        return
    (job,) = jobs
    notes = job["metadata"]["annotations"]
    assert set(notes["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert main_container(rc, job)["args"] == ["topics", "create"]
    spec = rc.pod_template(job)["spec"]
    assert "serviceAccountName" not in spec, "the chart's ServiceAccount does not exist yet at pre-install"
    assert all(v.get("configMap") is None for v in spec["volumes"]), "the ConfigMap does not exist yet either"
    if profile.merged["networkPolicy"]["enabled"]:
        hook_np = profile.named("NetworkPolicy", job["metadata"]["name"])
        assert int(hook_np["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            notes["helm.sh/hook-weight"]
        )


def test_strimzi_topics_match_the_services_topic_table(
    rc: ModuleType, dev: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _settings_model()
    topics_mod = pytest.importorskip("lfr.core.topics")
    embedder = main_container(rc, dev.named("Deployment", "lfr-embedder"))
    specs = {
        s.name: s
        for s in topics_mod.topic_specs(load_container_settings(config, dev, embedder, tmp_path, monkeypatch))
    }
    rendered = {t["spec"]["topicName"]: t for t in dev.of_kind("KafkaTopic")}
    assert set(rendered) == set(specs)
    for name, topic in rendered.items():
        assert topic["apiVersion"].startswith("kafka.strimzi.io/")
        assert (
            topic["metadata"]["labels"]["strimzi.io/cluster"] == dev.values["kafka"]["strimzi"]["clusterName"]
        )
        assert topic["spec"]["partitions"] == specs[name].partitions
        assert topic["spec"]["replicas"] == dev.merged["kafka"]["replicationFactor"]
        assert topic["spec"]["config"] == specs[name].config(), name


# Autoscaling -----------------------------------------------------------------------------------------------


def test_keda_scaled_objects(rc: ModuleType, production: Profile) -> None:
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in production.of_kind("ScaledObject")}
    auths = {o["metadata"]["name"]: o for o in production.of_kind("TriggerAuthentication")}
    assert set(scaled) == {"lfr-embedder", "lfr-alerting"}
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in production.of_kind("HorizontalPodAutoscaler")}
    assert not hpa_targets & set(scaled), "KEDA and a plain HPA must not fight over one Deployment"
    for name, (topic, group, partitions_key) in CONSUMERS.items():
        so = scaled[f"lfr-{name}"]
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        target = production.named("Deployment", so["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], "KEDA owns the replica count"
        partitions = production.merged["kafka"]["partitions"][partitions_key]
        assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"] <= partitions
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert (meta["topic"], meta["consumerGroup"]) == (topic, group)
        assert meta["bootstrapServers"] == production.values["kafka"]["bootstrapServers"]
        assert int(meta["lagThreshold"]) > 0
        assert meta["allowIdleConsumers"] == "false"
        assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
        auth = auths[trigger["authenticationRef"]["name"]]
        refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
        assert refs["password"] == ("lfr-kafka-sasl", "password")
        assert refs["ca"] == ("lfr-kafka-ca", "ca.crt")
        assert {"parameter": "username", "name": "LFR_KAFKA__SASL_USERNAME"} in auth["spec"]["env"]
        assert "LFR_KAFKA__SASL_USERNAME" in env_of(main_container(rc, target))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"autoscaling": {"keda": {"enabled": True, "embedder": {"maxReplicaCount": 49}}}},
            "maxReplicaCount=49 exceeds the 48 partitions of lfr.crops.v1",
        ),
        (
            {"autoscaling": {"keda": {"enabled": True, "alerting": {"maxReplicaCount": 13}}}},
            "maxReplicaCount=13 exceeds the 12 partitions of lfr.hits.v1",
        ),
        (
            {"kafka": {"partitions": {"hits": 4}}, "autoscaling": {"keda": {"enabled": True}}},
            "exceeds the 4 partitions",
        ),
        ({"embedder": {"replicas": 60}}, "embedder.replicas=60 exceeds"),
        (
            {"alerting": {"autoscaling": {"enabled": True, "maxReplicas": 20}}},
            "alerting.autoscaling.maxReplicas",
        ),
    ],
)
def test_replicas_beyond_partitions_are_refused(rc: ModuleType, values: dict[str, Any], message: str) -> None:
    from helm_python import HelmRenderError

    with pytest.raises(HelmRenderError, match=message):
        rc.render(values)


def test_cpu_hpa_when_keda_is_off(rc: ModuleType) -> None:
    values = {"embedder": {"autoscaling": {"enabled": True, "maxReplicas": 10}}}
    objs = rc.objects(rc.render(values))
    (hpa,) = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "lfr-embedder"
    assert hpa["spec"]["maxReplicas"] == 10
    errors, _ = rc.validate(objs, kube_version=KUBE_VERSION)
    assert errors == []


# Monitoring and exposure -----------------------------------------------------------------------------------


def test_service_monitor_scrapes_every_service(rc: ModuleType, production: Profile) -> None:
    (sm,) = production.of_kind("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = sm["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("health", "/metrics")
    scraped = [
        s
        for s in production.of_kind("Service")
        if rc.selector_matches(sm["spec"]["selector"], s["metadata"]["labels"])
    ]
    assert {component(s) for s in scraped} == set(SERVICES)
    for svc in scraped:
        assert "health" in {p["name"] for p in svc["spec"]["ports"]}


def test_api_ingress_routes_to_the_api_service(production: Profile) -> None:
    (ing,) = production.of_kind("Ingress")
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    svc = production.named("Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}
    assert ing["spec"]["tls"][0]["secretName"] == "lfr-api-tls"


# The gallery import worker ---------------------------------------------------------------------------------

IMPORT_SOURCE = {"existingClaim": "custody-images", "mountPath": "/srv/custody"}


def _render_profile(rc: ModuleType, name: str, values: dict[str, Any]) -> Profile:
    from helm_python import Chart

    with Chart.load(CHART) as chart:
        merged = chart.merge_values(values)
    rendered = rc.render(values, release="lfr", namespace="lfr")
    return Profile(name, values, merged, rendered, rc.objects(rendered))


@pytest.fixture(scope="module")
def with_import(rc: ModuleType, production: Profile) -> Profile:
    """Production (KEDA, TLS, SASL, Sentinels, a ServiceMonitor) with the gallery import worker on."""
    values = rc.merge_values(production.values, {"galleryImport": {"enabled": True, "source": IMPORT_SOURCE}})
    return _render_profile(rc, "production+gallery-import", values)


def _import_objects(profile: Profile) -> list[dict[str, Any]]:
    """The worker's objects (its Strimzi topic, also named lfr-gallery-import, is not one of them)."""
    return [
        o
        for o in profile.objects
        if o["kind"] != "KafkaTopic"
        and (
            (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "gallery-import"
            or o["metadata"]["name"] == "lfr-gallery-import"
        )
    ]


def test_gallery_import_worker_is_off_by_default(profile: Profile) -> None:
    assert profile.merged["galleryImport"]["enabled"] is False
    assert _import_objects(profile) == []
    # The topic it would read is provisioned all the same, so records can wait for workers started later.
    if profile.merged["kafka"]["strimzi"]["enabled"]:
        assert "lfr.gallery-import.v1" in {t["spec"]["topicName"] for t in profile.of_kind("KafkaTopic")}


def test_gallery_import_worker_runs_the_worker_command_with_its_backends(
    rc: ModuleType, with_import: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = with_import.named("Deployment", "lfr-gallery-import")
    c = main_container(rc, dep)
    assert c["args"] == ["gallery", "worker"]
    env = env_of(c)
    assert env["LFR_KAFKA__BOOTSTRAP_SERVERS"]["value"] == with_import.values["kafka"]["bootstrapServers"]
    assert secret_ref(env["LFR_KAFKA__SASL_PASSWORD"]) == ("lfr-kafka-sasl", "password")
    assert env["LFR_MILVUS__URI"]["value"] == with_import.values["milvus"]["uri"]
    assert "LFR_REDIS__SENTINELS" in env and secret_ref(env["LFR_REDIS__PASSWORD"]) is not None
    assert env["LFR_MODELS__EXECUTION_PROVIDER"]["value"] == "cpu"
    assert env["LFR_MODELS__INTRA_OP_THREADS"]["value"] == "1"
    # It reads no crops and seals no probes: neither the crop key store nor the alert key reaches it.
    assert "LFR_REDIS__KEYSTORE_URL" not in env and "LFR_CRYPTO__ALERT_KEY" not in env
    config = _settings_model()
    s = load_container_settings(config, with_import, c, tmp_path, monkeypatch)
    assert s.milvus.uri == with_import.values["milvus"]["uri"]
    assert s.redis.sentinels and s.models.intra_op_threads == 1
    # The images: the claim, read-only, at the path the submitter lists.
    spec = rc.pod_template(dep)["spec"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "import-source"]
    assert (mount["mountPath"], mount["readOnly"]) == ("/srv/custody", True)
    (vol,) = [v for v in spec["volumes"] if v["name"] == "import-source"]
    assert vol["persistentVolumeClaim"] == {"claimName": "custody-images", "readOnly": True}
    port = with_import.merged["observability"]["healthPort"]
    assert workload_violations(rc, dep, port) == []
    assert network_violations(rc, with_import) == []


def test_gallery_import_worker_reaches_only_the_broker_redis_and_milvus(with_import: Profile) -> None:
    np_values = with_import.merged["networkPolicy"]
    policy = with_import.named("NetworkPolicy", "lfr-gallery-import")
    expected = [
        {k: np_values[flow][k] for k in ("to", "ports") if np_values[flow].get(k)}
        for flow in ("dns", "kafka", "redis", "milvus")
    ]
    assert policy["spec"]["egress"] == expected
    (ingress,) = policy["spec"]["ingress"]
    assert [p["port"] for p in ingress["ports"]] == ["health"] and ingress["from"]


def test_gallery_import_worker_scales_on_its_consumer_lag(rc: ModuleType, with_import: Profile) -> None:
    topics_mod = pytest.importorskip("lfr.core.topics", reason="the lfr package is not installed")
    worker = pytest.importorskip("lfr.retro.import_worker", reason="the lfr package is not installed")
    so = with_import.named("ScaledObject", "lfr-gallery-import")
    assert so["spec"]["scaleTargetRef"]["name"] == "lfr-gallery-import"
    (trigger,) = so["spec"]["triggers"]
    meta = trigger["metadata"]
    # The topic and group the worker really uses, and never more workers than partitions.
    assert (meta["topic"], meta["consumerGroup"]) == (topics_mod.GALLERY_IMPORT, worker.GROUP_ID)
    assert 0 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    assert so["spec"]["maxReplicaCount"] <= topics_mod.GALLERY_IMPORT_PARTITIONS
    assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable") and trigger["authenticationRef"]
    dep = with_import.named("Deployment", "lfr-gallery-import")
    assert "replicas" not in dep["spec"], "KEDA owns the replica count"
    hpa_targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in with_import.of_kind("HorizontalPodAutoscaler")
    }
    assert "lfr-gallery-import" not in hpa_targets
    # Disruptions, scraping and the schema, as for every other service.
    labels = rc.pod_template(dep)["metadata"]["labels"]
    assert any(
        rc.selector_matches(p["spec"]["selector"], labels) for p in with_import.of_kind("PodDisruptionBudget")
    )
    (sm,) = with_import.of_kind("ServiceMonitor")
    svc = with_import.named("Service", "lfr-gallery-import")
    assert rc.selector_matches(sm["spec"]["selector"], svc["metadata"]["labels"])
    errors, _ = rc.validate(with_import.objects, kube_version=KUBE_VERSION)
    assert errors == []
    assert rc.lint(with_import.values, kube_version=KUBE_VERSION) == []


def test_gallery_import_worker_without_keda(rc: ModuleType) -> None:
    nfs = {"nfs": {"server": "images.police.example", "path": "/custody", "readOnly": True}}
    objs = rc.objects(rc.render({"galleryImport": {"enabled": True, "source": {"volume": nfs}}}))
    (dep,) = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "lfr-gallery-import"]
    assert dep["spec"]["replicas"] == 2
    assert not [o for o in objs if o["kind"] == "ScaledObject"]
    (vol,) = [v for v in rc.pod_template(dep)["spec"]["volumes"] if v["name"] == "import-source"]
    assert vol == {"name": "import-source", **nfs}
    objs = rc.objects(
        rc.render(
            {
                "galleryImport": {
                    "enabled": True,
                    "source": IMPORT_SOURCE,
                    "autoscaling": {"enabled": True, "maxReplicas": 8},
                }
            }
        )
    )
    (hpa,) = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]
    assert (hpa["spec"]["scaleTargetRef"]["name"], hpa["spec"]["maxReplicas"]) == ("lfr-gallery-import", 8)
    errors, _ = rc.validate(objs, kube_version=KUBE_VERSION)
    assert errors == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"galleryImport": {"enabled": True}},
            "galleryImport.source.existingClaim or galleryImport.source.volume",
        ),
        (
            {"galleryImport": {"enabled": True, "source": {**IMPORT_SOURCE, "mountPath": "custody"}}},
            "mountPath must be an absolute path",
        ),
        (
            {"galleryImport": {"enabled": True, "source": IMPORT_SOURCE, "replicas": 30}},
            "galleryImport.replicas=30 exceeds the 24 partitions of lfr.gallery-import.v1",
        ),
        (
            {"autoscaling": {"keda": {"enabled": True, "galleryImport": {"maxReplicaCount": 25}}}},
            "maxReplicaCount=25 exceeds the 24 partitions of lfr.gallery-import.v1",
        ),
    ],
)
def test_gallery_import_values_are_checked(rc: ModuleType, values: dict[str, Any], message: str) -> None:
    from helm_python import HelmRenderError

    with pytest.raises(HelmRenderError, match=message):
        rc.render(values)
