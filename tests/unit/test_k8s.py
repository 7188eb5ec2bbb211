"""The Kubernetes manifests, offline: every overlay rendered with kustomize, every resource
checked against its schema (strict) and against the code's topics, ACLs, settings and metrics.

Each kind of mistake is shown caught on a copy of the rendered production overlay."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from deploy.k8s.check import OVERLAYS, code_problems, render, schema_problems

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def test_every_overlay_passes_its_schemas_and_agrees_with_the_code(
    rendered: dict[str, list[Doc]],
) -> None:
    for overlay, docs in rendered.items():
        kinds = {doc["kind"] for doc in docs}
        assert {"StatefulSet", "Deployment", "PodDisruptionBudget", "KafkaTopic", "KafkaUser",
                "ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds  # fmt: skip
        assert [p for doc in docs for p in schema_problems(doc)] == [], overlay
        assert code_problems(docs) == [], overlay


def first(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    return next(d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"]))


def broken(rendered: dict[str, list[Doc]], change: Callable[[list[Doc]], None]) -> list[str]:
    docs = copy.deepcopy(rendered["production"])
    change(docs)
    return [p for doc in docs for p in schema_problems(doc)] + code_problems(docs)


def test_a_misspelt_field_of_a_built_in_kind_is_refused(rendered: dict[str, list[Doc]]) -> None:
    def misspell(docs: list[Doc]) -> None:
        first(docs, "StatefulSet")["spec"]["replica"] = 3

    [problem] = broken(rendered, misspell)
    assert "StatefulSet/exhaust-processor" in problem and "'replica' was unexpected" in problem


def test_a_misspelt_field_of_a_custom_resource_is_refused(rendered: dict[str, list[Doc]]) -> None:
    def misspell(docs: list[Doc]) -> None:
        first(docs, "KafkaTopic", "exhaust.requests")["spec"]["partition"] = 12
        first(docs, "ScaledObject")["spec"]["maxReplicas"] = 4

    problems = broken(rendered, misspell)
    assert any("KafkaTopic/exhaust.requests" in p and "'partition'" in p for p in problems)
    assert any("ScaledObject/exhaust-generator" in p and "'maxReplicas'" in p for p in problems)


def test_a_setting_or_topic_the_code_does_not_know_is_refused(
    rendered: dict[str, list[Doc]],
) -> None:
    def drift(docs: list[Doc]) -> None:
        config = next(d for d in docs if d["metadata"]["name"].startswith("exhaust-config"))
        config["data"]["EXHAUST_TOPIC_PARTITIONZ"] = "12"
        first(docs, "KafkaTopic", "exhaust.work")["spec"]["topicName"] = "exhaust.wrok"

    problems = broken(rendered, drift)
    assert any("EXHAUST_TOPIC_PARTITIONZ is not a setting" in p for p in problems)
    assert "no KafkaTopic for exhaust.work" in problems
    assert "KafkaTopic exhaust.wrok is not a topic of the service" in problems


def test_topics_acls_scaling_and_grace_must_match_the_code(rendered: dict[str, list[Doc]]) -> None:
    def drift(docs: list[Doc]) -> None:
        first(docs, "KafkaTopic", "exhaust.jobs")["spec"]["config"]["cleanup.policy"] = "delete"
        first(docs, "KafkaTopic", "exhaust.requests")["spec"]["partitions"] = 6
        user = first(docs, "KafkaUser", "exhaust-producer")
        user["spec"]["authorization"]["acls"].append(
            {"resource": {"type": "topic", "name": "exhaust.jobs", "patternType": "literal"},
             "operations": ["Read"]}
        )  # fmt: skip
        first(docs, "ScaledObject")["spec"]["maxReplicaCount"] = 50
        generator = first(docs, "Deployment", "exhaust-generator")
        generator["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10

    problems = "\n".join(broken(rendered, drift))
    assert (
        "KafkaTopic exhaust.jobs: cleanup.policy=delete, the service creates it with compact"
        in problems
    )
    assert "KafkaTopic exhaust.requests: 6 partitions, EXHAUST_TOPIC_PARTITIONS is 12" in problems
    assert "KafkaUser exhaust-producer: ACLs differ" in problems
    assert "maxReplicaCount 50 exceeds the 12 partitions" in problems
    assert "exhaust-generator: terminationGracePeriodSeconds must outlast" in problems


def test_alerts_and_dashboard_query_only_exported_metrics(rendered: dict[str, list[Doc]]) -> None:
    def drift(docs: list[Doc]) -> None:
        rules = first(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
        rules[0]["expr"] = "exhaust_stalled_partitions > 0"
        board = first(docs, "ConfigMap", "exhaust-grafana-dashboard")
        dashboard = json.loads(board["data"]["exhaust.json"])
        dashboard["panels"][0]["targets"][0]["expr"] = "rate(exhaust_requests_total[5m])"
        board["data"]["exhaust.json"] = json.dumps(dashboard)

    problems = broken(rendered, drift)
    assert any(
        "alert ExhaustPartitionStalled queries exhaust_stalled_partitions" in p for p in problems
    )
    assert any("queries exhaust_requests_total" in p for p in problems)
