"""Fixtures for the deployment tests: the chart rendered once per values profile, offline.

Rendering, linting and schema validation live in helm/render.py (also the operators' offline `helm
template`); this file only loads it and caches one render per profile for the session.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "lfr"
KUBE_VERSION = "1.30"  # oldest Kubernetes the chart is validated against (Chart.yaml allows >=1.27)
RELEASE, NAMESPACE = "lfr", "lfr"

# Extra coverage on top of production: the branches the three shipped files leave off.
ALL_FEATURES_OVERRIDES: dict[str, Any] = {
    "models": {"buildAtStartup": True},
    "kafka": {
        "sasl": {"username": ""},
        "tls": {"certKey": "user.crt", "keyKey": "user.key"},
    },
    "api": {"auth": {"apiKeysKey": "api-keys"}},
    "image": {"digest": "sha256:" + "ab" * 32},
    # A managed Redis by rediss:// URL instead of production's Sentinels.
    "redis": {"sentinel": {"hosts": []}, "url": "rediss://lfr-redis.cache.police.example:6380/0"},
}


def _load_render_module() -> ModuleType:
    pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (dev extra)")
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (dev extra)")
    name = "lfr_chart_render"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "helm" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    import helm_python

    helm_python.disable_logging()  # `fail` messages from negative tests would otherwise flood stderr
    return module


@dataclass(frozen=True)
class Profile:
    name: str
    values: dict[str, Any]  # the user-supplied values (what `helm -f` would pass)
    merged: dict[str, Any]  # chart defaults coalesced with them: what the templates saw
    rendered: dict[str, str]
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
        return matches[0]


@pytest.fixture(scope="session")
def rc() -> ModuleType:
    """helm/render.py, imported from its path."""
    return _load_render_module()


def _profile_values(rc: ModuleType, name: str) -> dict[str, Any]:
    if name == "default":
        return {}
    if name == "all-features":
        return rc.merge_values(_profile_values(rc, "production"), ALL_FEATURES_OVERRIDES)
    return rc.load_values([CHART / f"values-{name}.yaml"])


PROFILES = ["default", "dev", "production", "all-features"]
_cache: dict[str, Profile] = {}


def build_profile(rc: ModuleType, name: str) -> Profile:
    if name not in _cache:
        from helm_python import Chart

        values = _profile_values(rc, name)
        with Chart.load(CHART) as chart:
            merged = chart.merge_values(values)
        rendered = rc.render(values, release=RELEASE, namespace=NAMESPACE)
        _cache[name] = Profile(name, values, merged, rendered, rc.objects(rendered))
    return _cache[name]


@pytest.fixture(scope="session", params=PROFILES)
def profile(request: pytest.FixtureRequest, rc: ModuleType) -> Profile:
    """The chart rendered with each values profile (default, dev, production, all-features)."""
    return build_profile(rc, request.param)


@pytest.fixture(scope="session")
def production(rc: ModuleType) -> Profile:
    return build_profile(rc, "production")


@pytest.fixture(scope="session")
def dev(rc: ModuleType) -> Profile:
    return build_profile(rc, "dev")


@pytest.fixture(scope="session")
def default(rc: ModuleType) -> Profile:
    return build_profile(rc, "default")


@pytest.fixture(scope="session")
def all_features(rc: ModuleType) -> Profile:
    return build_profile(rc, "all-features")
