"""Offline checks of the Kubernetes manifests: schemas, and agreement with the code.

``python -m deploy.k8s.check`` renders every overlay with kustomize and prints what is wrong
(exit 1), or the number of resources checked. ``make test`` runs the same checks
(``tests/unit/test_k8s.py``). Nothing here needs a cluster or a network:

* **built-in kinds** (Deployment, StatefulSet, Service, PodDisruptionBudget, ConfigMap, …)
  against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``, strict (an unknown
  or misspelt field is an error);
* **custom resources** (Strimzi, KEDA, prometheus-operator) against the CRDs in
  ``deploy/k8s/crds``: each version's ``openAPIV3Schema`` as a JSON Schema, made strict the same
  way (``additionalProperties: false`` wherever the CRD lists properties and does not preserve
  unknown fields);
* **the code's own tables**: every ``EXHAUST_*`` name is a setting and every value parses; every
  topic of :func:`app.stream.topics.topic_specs` has a ``KafkaTopic`` with its partitions,
  cleanup policy, retention and ``min.insync.replicas``, and no other topic is declared; every
  principal's ``KafkaUser`` holds exactly :func:`app.stream.access.grants`; the KEDA trigger
  names the work topic and the generators' group and never scales past the partitions; ports and
  probe paths are the ones the workers serve; grace periods outlast the generators' drain;
  every metric an alert or the dashboard queries is one the service exports.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from pydantic import ValidationError

from app.metrics import Metrics
from app.settings import Settings
from app.stream.access import PRINCIPAL_ROLES, grants, principal
from app.stream.topics import topic_specs
from app.stream.work_consumer import DRAIN_SECONDS
from app.stream.work_queue import generator_group

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OVERLAYS = ("local", "production")
K8S_VERSION = "1.33.0"
ROLES = {"processor", "generator", "api", "all"}
PROBE_PATHS = {"/healthz", "/readyz"}

Doc = dict[str, Any]


def kustomize() -> Path:
    """The kustomize binary ``make`` installs (``EXHAUST_KUSTOMIZE`` names another)."""
    return Path(os.environ.get("EXHAUST_KUSTOMIZE", ROOT / ".tools" / "kustomize"))


def render(overlay: str) -> list[Doc]:
    """The resources of ``deploy/k8s/overlays/{overlay}``, as kustomize builds them."""
    result = subprocess.run(
        [str(kustomize()), "build", str(HERE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build {overlay} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# --- schemas --------------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as a strict JSON Schema."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], Doc]:
    """``{(apiVersion, kind): JSON Schema}`` of every CRD in ``deploy/k8s/crds``."""
    found = {}
    for path in sorted((HERE / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            found[(f"{group}/{version['name']}", kind)] = schema
    return found


def schema_problems(doc: Doc) -> list[str]:
    """What the resource's schema refuses in ``doc`` (strict)."""
    where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    group = key[0].split("/")[0] if "/" in key[0] else ""
    if "." in group and not group.endswith("k8s.io"):  # a custom resource
        schema = crd_schemas().get(key)
        if schema is None:
            return [f"{where}: no CRD for {key[0]} {key[1]} in deploy/k8s/crds"]
        validator = jsonschema.Draft7Validator(schema)
        return [
            f"{where}: {'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in validator.iter_errors(doc)
        ]
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        return [f"{where}: {path}: {exc.message}"]
    return []


# --- agreement with the code ----------------------------------------------------------------


def _by_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc.get("kind") == kind]


def _workloads(docs: Iterable[Doc]) -> Iterator[Doc]:
    for doc in docs:
        if doc.get("kind") in ("Deployment", "StatefulSet"):
            yield doc


def _config(docs: list[Doc]) -> dict[str, str]:
    maps = [
        d for d in _by_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("exhaust-config")
    ]
    return dict(maps[0].get("data", {})) if maps else {}


def _settings_from(env: dict[str, str]) -> tuple[Settings | None, list[str]]:
    fields = Settings.model_fields
    unknown = sorted(k for k in env if k.removeprefix("EXHAUST_").lower() not in fields)
    problems = [f"{name} is not a setting" for name in unknown]
    values = {k.removeprefix("EXHAUST_").lower(): v for k, v in env.items() if k not in unknown}
    try:
        return Settings.model_validate(values), problems
    except ValidationError as exc:
        return None, problems + [f"settings: {e['msg']} ({e['loc']})" for e in exc.errors()]


# Stand-ins for values that come from Secrets, in the shape their settings take.
SECRET_STAND_INS = {
    "EXHAUST_API_KEYS": '{"stand-in-key-0123456789abcdef": "acme"}',
    "EXHAUST_SECRETS_KEY": "pR4S7ZqkYJ3mCfQ1Wc2rVt8sXn0bLd5eHg6aKj9uMyo=",
}


def _container_env(workload: Doc) -> dict[str, str]:
    """A workload's own ``EXHAUST_*`` variables; those from Secrets get a stand-in value."""
    env = {}
    for container in workload["spec"]["template"]["spec"]["containers"]:
        for var in container.get("env", []):
            name = var["name"]
            if name.startswith("EXHAUST_"):
                env[name] = var.get("value", SECRET_STAND_INS.get(name, "from-a-secret"))
    return env


def code_problems(docs: list[Doc]) -> list[str]:
    """Where the manifests disagree with the code's topics, ACLs, settings, ports, metrics."""
    problems: list[str] = []
    config = _config(docs)
    if not config:
        return ["no exhaust-config ConfigMap"]
    settings: Settings | None = None
    for workload in _workloads(docs):
        name = workload["metadata"]["name"]
        role_settings, found = _settings_from({**config, **_container_env(workload)})
        problems += [f"{name}: {p}" for p in found]
        settings = settings or role_settings
        spec = workload["spec"]["template"]["spec"]
        for container in spec["containers"]:
            args = container.get("args", [])
            if not args or args[0] not in ROLES:
                problems.append(f"{name}: the role argument {args} is not one of {sorted(ROLES)}")
            ports = [p["containerPort"] for p in container.get("ports", [])]
            if role_settings is not None and ports != [role_settings.http_port]:
                problems.append(
                    f"{name}: container ports {ports}, the worker serves {role_settings.http_port}"
                )
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                path = container.get(probe, {}).get("httpGet", {}).get("path")
                if path not in PROBE_PATHS:
                    problems.append(
                        f"{name}: {probe} path {path!r} is not one of {sorted(PROBE_PATHS)}"
                    )
            if (
                args
                and args[0] == "generator"
                and spec.get("terminationGracePeriodSeconds", 30) <= DRAIN_SECONDS
            ):
                problems.append(
                    f"{name}: terminationGracePeriodSeconds must outlast the "
                    f"{DRAIN_SECONDS:.0f} s drain"
                )
    if settings is None:
        return problems or ["no workload whose settings parse"]
    problems += _topic_problems(docs, settings)
    problems += _user_problems(docs, settings)
    problems += _scaler_problems(docs, settings)
    problems += _metric_problems(docs)
    return problems


def _topic_problems(docs: list[Doc], settings: Settings) -> list[str]:
    problems = []
    declared = {
        d["spec"].get("topicName", d["metadata"]["name"]): d["spec"]
        for d in _by_kind(docs, "KafkaTopic")
    }
    for spec in topic_specs(settings):
        topic = declared.pop(spec.name, None)
        if topic is None:
            problems.append(f"no KafkaTopic for {spec.name}")
            continue
        if topic.get("partitions") != spec.partitions:
            problems.append(
                f"KafkaTopic {spec.name}: {topic.get('partitions')} partitions, "
                f"EXHAUST_TOPIC_PARTITIONS is {spec.partitions}"
            )
        if topic.get("replicas", 0) < settings.topic_replication:
            problems.append(
                f"KafkaTopic {spec.name}: {topic.get('replicas')} replicas, "
                f"EXHAUST_TOPIC_REPLICATION is {settings.topic_replication}"
            )
        config = {k: str(v) for k, v in (topic.get("config") or {}).items()}
        for key, value in spec.config.items():
            if config.get(key) != value:
                problems.append(
                    f"KafkaTopic {spec.name}: {key}={config.get(key)}, the service "
                    f"creates it with {value}"
                )
    problems += [f"KafkaTopic {name} is not a topic of the service" for name in declared]
    return problems


def _user_problems(docs: list[Doc], settings: Settings) -> list[str]:
    problems = []
    users = {d["metadata"]["name"]: d["spec"] for d in _by_kind(docs, "KafkaUser")}
    for role in PRINCIPAL_ROLES:
        user = users.pop(principal(role), None)
        if user is None:
            problems.append(f"no KafkaUser {principal(role)}")
            continue
        wanted = sorted(
            (g.resource, g.name, "prefix" if g.prefixed else "literal", op)
            for g in grants(settings, role) for op in g.operations
        )  # fmt: skip
        acls = user.get("authorization", {}).get("acls", [])
        actual = sorted(
            (r["type"], r.get("name"), r.get("patternType", "literal"), op)
            for a in acls for r in [a["resource"]] for op in a["operations"]
        )  # fmt: skip
        if actual != wanted:
            extra, missing = sorted(set(actual) - set(wanted)), sorted(set(wanted) - set(actual))
            problems.append(
                f"KafkaUser {principal(role)}: ACLs differ from app/stream/access.py "
                f"(extra {extra}, missing {missing})"
            )
    problems += [f"KafkaUser {name} is not a principal of the service" for name in users]
    return problems


def _scaler_problems(docs: list[Doc], settings: Settings) -> list[str]:
    problems = []
    for scaled in _by_kind(docs, "ScaledObject"):
        spec = scaled["spec"]
        if spec.get("maxReplicaCount", 100) > settings.topic_partitions:
            problems.append(
                f"ScaledObject {scaled['metadata']['name']}: maxReplicaCount "
                f"{spec.get('maxReplicaCount')} exceeds the {settings.topic_partitions} "
                "partitions of the work topic"
            )
        for trigger in spec.get("triggers", []):
            meta = trigger.get("metadata", {})
            if trigger.get("type") != "kafka":
                continue
            if meta.get("topic") != settings.topic("work"):
                problems.append(
                    f"ScaledObject: topic {meta.get('topic')}, the generators read "
                    f"{settings.topic('work')}"
                )
            if meta.get("consumerGroup") != generator_group(settings):
                problems.append(
                    f"ScaledObject: group {meta.get('consumerGroup')}, the generators' is "
                    f"{generator_group(settings)}"
                )
            if meta.get("bootstrapServers") != settings.kafka_bootstrap:
                problems.append(
                    f"ScaledObject: bootstrap {meta.get('bootstrapServers')}, the workers use "
                    f"{settings.kafka_bootstrap}"
                )
    return problems


def exported_metrics() -> set[str]:
    """Every sample name the service can export (counters with ``_total``, histograms with
    their series)."""
    names = set()
    for metric in Metrics().registry.collect():
        base = metric.name
        if metric.type == "counter":
            names |= {base, f"{base}_total", f"{base}_created"}
        elif metric.type == "histogram":
            names |= {base, f"{base}_bucket", f"{base}_count", f"{base}_sum", f"{base}_created"}
        else:
            names.add(base)
    return names


def _metric_problems(docs: list[Doc]) -> list[str]:
    exported = exported_metrics()
    queries = []
    for rule_set in _by_kind(docs, "PrometheusRule"):
        for group in rule_set["spec"]["groups"]:
            queries += [(f"alert {r.get('alert')}", r["expr"]) for r in group["rules"]]
    for config_map in _by_kind(docs, "ConfigMap"):
        for name, text in config_map.get("data", {}).items():
            if name.endswith(".json"):
                for panel in json.loads(text).get("panels", []):
                    queries += [
                        (f"panel {panel.get('title')}", t["expr"]) for t in panel.get("targets", [])
                    ]
    problems = []
    for where, expr in queries:
        for name in re.findall(r"\bexhaust_[a-z_]+", expr):
            if name not in exported:
                problems.append(f"{where} queries {name}, which the service does not export")
    if not queries:
        problems.append("no alert or dashboard query found")
    return problems


def check(overlays: Iterable[str] = OVERLAYS) -> tuple[int, list[str]]:
    """(resources checked, problems) over the rendered ``overlays``."""
    count, problems = 0, []
    for overlay in overlays:
        docs = render(overlay)
        count += len(docs)
        for doc in docs:
            problems += [f"{overlay}: {p}" for p in schema_problems(doc)]
        problems += [f"{overlay}: {p}" for p in code_problems(docs)]
    return count, problems


def main() -> int:
    count, problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{count} resources in {len(OVERLAYS)} overlays: schemas and code agree")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
