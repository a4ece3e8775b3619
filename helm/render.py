"""Render, lint and validate the lfr Helm chart offline, without a helm binary or a cluster.

Uses helm-python-sdk (``helm_python``: Helm's own Go template engine and linter behind a C ABI) to render,
and kubernetes-validate's bundled OpenAPI schemas to check every object against a pinned Kubernetes version.
Custom resources (KEDA, Prometheus Operator, Strimzi) have no bundled schema: they are reported as skipped
and the chart tests check their structure themselves.

    python helm/render.py -f helm/lfr/values-production.yaml --namespace lfr > lfr.yaml
    python helm/render.py -f helm/lfr/values-dev.yaml --validate 1.30 --lint
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parent / "lfr"
DEFAULT_KUBE_VERSION = "1.30"

# Kinds served by CRDs the chart can render; kubernetes-validate has no schema for them.
CRD_KINDS = frozenset(
    {
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("keda.sh/v1alpha1", "TriggerAuthentication"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
        ("kafka.strimzi.io/v1", "KafkaTopic"),
    }
)

LINT_SEVERITIES = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge like repeated ``helm -f``: maps merge, anything else replaces, null deletes the key."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_values(files: Iterable[str | Path] = (), sets: Iterable[str] = ()) -> dict[str, Any]:
    """Values from files (in order) then ``--set`` expressions, as helm install would combine them."""
    import helm_python

    values: dict[str, Any] = {}
    for f in files:
        loaded = yaml.safe_load(Path(f).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{f}: values must be a mapping")
        values = merge_values(values, loaded)
    for expr in sets:
        values = merge_values(values, helm_python.parse_set_string(expr))
    return values


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "lfr",
    namespace: str = "lfr",
    chart_dir: Path = CHART_DIR,
    is_upgrade: bool = False,
) -> dict[str, str]:
    """{template path: manifest text} for every template except NOTES.txt."""
    from helm_python import Chart

    with Chart.load(chart_dir) as chart:
        rendered = chart.render(
            dict(values or {}),
            name=release,
            namespace=namespace,
            is_install=not is_upgrade,
            is_upgrade=is_upgrade,
        )
    return {path: text for path, text in rendered.items() if not path.endswith("NOTES.txt")}


def objects(rendered: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in the rendered manifests, in template order."""
    objs: list[dict[str, Any]] = []
    for path in sorted(rendered):
        for doc in yaml.safe_load_all(rendered[path]):
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise ValueError(f"{path}: rendered a document that is not a Kubernetes object: {doc!r:.200}")
            objs.append(doc)
    return objs


def to_yaml_stream(objs: Iterable[Mapping[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(dict(o), sort_keys=False) for o in objs)


def lint(
    values: Mapping[str, Any] | None = None,
    *,
    kube_version: str = DEFAULT_KUBE_VERSION,
    namespace: str = "lfr",
    chart_dir: Path = CHART_DIR,
) -> list[dict[str, Any]]:
    """``helm lint --strict`` findings at WARNING or worse (strict mode fails on missing value keys too)."""
    import helm_python

    report = helm_python.lint(
        chart_dir,
        dict(values or {}),
        strict=True,
        namespace=namespace,
        kube_version=f"v{kube_version.lstrip('v')}.0" if kube_version.count(".") == 1 else kube_version,
    )
    problems = [m for m in report.get("messages", []) if int(m.get("severity", 0)) >= 2]
    problems += [{"severity": 3, "path": "", "error": e} for e in report.get("errors") or []]
    return problems


@functools.lru_cache(maxsize=64)
def _validator(kube_version: str, api_version: str, kind: str) -> Any:
    """A compiled strict-schema validator from kubernetes-validate's bundled schemas (cached: loading the
    shared definitions is the slow part, and kubernetes_validate.validate reloads them on every call)."""
    import re

    import jsonschema
    import referencing
    from kubernetes_validate import utils as kvu

    wanted = kvu.major_minor(kube_version.lstrip("v"))
    versions = [v for v in kvu.all_versions() if kvu.major_minor(v) <= wanted]
    if not versions or kvu.major_minor(versions[-1]) != wanted:
        raise kvu.VersionNotSupportedError(version=wanted)
    schema_dir = f"v{versions[-1]}-local-strict"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kvu.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{api}.json", wanted)
    except FileNotFoundError:
        raise kvu.SchemaNotFoundError(version=wanted, kind=kind, api_version=api_version) from None
    definitions = kvu.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", wanted)
    registry = referencing.Resource.from_contents(schema) @ referencing.Registry()
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate(
    objs: Iterable[Mapping[str, Any]], *, kube_version: str = DEFAULT_KUBE_VERSION
) -> tuple[list[str], list[Mapping[str, Any]]]:
    """Validate built-in kinds strictly against ``kube_version``.

    Returns (errors, skipped custom resources). A kind without a schema that is not a known CRD is an
    error: it would be a typo or an API removed in that Kubernetes version.
    """
    from kubernetes_validate import utils as kvu

    errors: list[str] = []
    skipped: list[Mapping[str, Any]] = []
    for obj in objs:
        api_version, kind = obj["apiVersion"], obj["kind"]
        name = f"{kind}/{obj.get('metadata', {}).get('name', '?')}"
        if (api_version, kind) in CRD_KINDS:
            skipped.append(obj)
            continue
        try:
            validator = _validator(kube_version, api_version, kind)
        except kvu.SchemaNotFoundError:
            errors.append(f"{name}: no schema for {api_version} {kind} in Kubernetes {kube_version}")
            continue
        for err in sorted(validator.iter_errors(dict(obj)), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in err.path) or "(root)"
            errors.append(f"{name}: {where}: {err.message}")
    return errors, skipped


# Walking rendered objects --------------------------------------------------------------------------------

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})
LONG_RUNNING_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


def pod_template(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod template of a workload object."""
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return obj["spec"]["template"]


def containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Init containers then regular containers."""
    return [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (an empty selector selects everything)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in vals):
            return False
        if op == "NotIn" and present and labels[key] in vals:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-f", "--values", action="append", default=[], help="values file (repeatable)")
    parser.add_argument("--set", action="append", default=[], help="helm --set expression (repeatable)")
    parser.add_argument("--name", default="lfr", help="release name")
    parser.add_argument("--namespace", default="lfr")
    parser.add_argument("--upgrade", action="store_true", help="render as an upgrade rather than an install")
    parser.add_argument("--validate", metavar="KUBE_VERSION", help="validate objects, e.g. 1.30")
    parser.add_argument("--lint", action="store_true", help="run helm lint --strict as well")
    parser.add_argument("--json", action="store_true", help="print objects as a JSON list instead of YAML")
    args = parser.parse_args(argv)

    values = load_values(args.values, args.set)
    objs = objects(render(values, release=args.name, namespace=args.namespace, is_upgrade=args.upgrade))
    status = 0
    if args.lint:
        for m in lint(values, kube_version=args.validate or DEFAULT_KUBE_VERSION, namespace=args.namespace):
            print(
                f"lint {LINT_SEVERITIES.get(m['severity'], m['severity'])}: {m['path']}: {m['error']}",
                file=sys.stderr,
            )
            status = 1
    if args.validate:
        errors, skipped = validate(objs, kube_version=args.validate)
        for e in errors:
            print(f"invalid: {e}", file=sys.stderr)
        for o in skipped:
            print(
                f"skipped (CRD, no schema): {o['apiVersion']} {o['kind']}/{o['metadata']['name']}",
                file=sys.stderr,
            )
        status = status or (1 if errors else 0)
    print(json.dumps(objs, indent=2) if args.json else to_yaml_stream(objs), end="")
    return status


if __name__ == "__main__":
    sys.exit(main())
