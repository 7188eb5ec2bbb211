"""The service's topics: their required layout, and creating or checking them at start.

Layout (names from ``settings.topic``):

=============  ==========  =============  ==============================================
topic          key         partitions     why
=============  ==========  =============  ==============================================
requests       tag         N              all requests of a tag land in one partition
job-events     tag         N (same)       co-partitioned with requests: one writer per tag
jobs           request_id  N (same)       compacted; the table changelog = job store
work           request_id  N              work items for generators
dlq            source key  N              undecodable input, error in headers
fills          dataset     N (same)       dataset fills, one writer per dataset
datasets       dataset     N (same)       compacted; the catalog of managed datasets
=============  ==========  =============  ==============================================

An existing topic that breaks co-partitioning, its cleanup policy or the replication asked for
is a configuration error: the service refuses to start with one clear message rather than
silently mis-routing or losing jobs. Only the processor creates topics (``EXHAUST_TOPIC_MODE=
create``); other roles wait for them, and in ``verify`` mode every role only checks them, for
clusters where an operator owns the topics (Strimzi's Topic Operator, ``deploy/k8s``). Faust
declares no topic of its own: its two changelogs are ``jobs`` and ``datasets`` above, and its
leader topic is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.domain.errors import TopicLayoutError, TopicsMissing
from app.settings import Settings
from app.stream.aiokafka_compat import partitions_of
from app.stream.connection import client_options

COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    co_partitioned: bool = False

    @property
    def compacted(self) -> bool:
        return self.config.get("cleanup.policy") == "compact"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of the service with the configuration it is created with: the one table
    that the Kubernetes manifests (``deploy/k8s``) and the ACLs are checked against."""
    n = settings.topic_partitions
    events = {
        "cleanup.policy": "delete",
        "retention.ms": str(settings.topic_retention_hours * HOUR_MS),
    }
    dlq = {"cleanup.policy": "delete", "retention.ms": str(settings.dlq_retention_hours * HOUR_MS)}
    specs = [
        TopicSpec(settings.topic("requests"), n, dict(events), co_partitioned=True),
        TopicSpec(settings.topic("job-events"), n, dict(events), co_partitioned=True),
        TopicSpec(settings.topic("jobs"), n, dict(COMPACTED), co_partitioned=True),
        TopicSpec(settings.topic("work"), n, dict(events)),
        TopicSpec(settings.topic("dlq"), n, dict(dlq)),
        TopicSpec(settings.topic("fills"), n, dict(events), co_partitioned=True),
        TopicSpec(settings.topic("datasets"), n, dict(COMPACTED), co_partitioned=True),
    ]
    if settings.topic_min_insync_replicas is not None:
        for spec in specs:
            spec.config["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
    return specs


TOPIC_ALREADY_EXISTS = 36  # Kafka's error code


async def ensure_topics(
    settings: Settings,
    specs: list[TopicSpec] | None = None,
    admin: Any = None,
    create: bool | None = None,
) -> list[str]:
    """Create missing topics (``create``, by default unless ``settings.topic_mode`` is
    ``verify``), check every existing one; return the names created.

    Raises :class:`TopicLayoutError` when an existing topic has the wrong partition count
    (co-partitioned topics), the wrong cleanup policy (a compacted event topic would drop
    requests that share a tag), fewer replicas than ``EXHAUST_TOPIC_REPLICATION`` or a lower
    ``min.insync.replicas`` than asked, and :class:`TopicsMissing` (retried by the caller until
    its deadline) when a topic is missing and this call may not create it. A topic this call
    found missing but that exists by the time it creates it (another worker was first, or the
    broker's metadata lagged behind a creation) is checked like any existing one: the broker
    answers per topic, and only the topics created here are taken as right.
    """
    specs = specs if specs is not None else topic_specs(settings)
    create = settings.topic_mode == "create" if create is None else create
    own = admin is None
    if admin is None:
        admin = AIOKafkaAdminClient(**client_options(settings))
        await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing and not create:
            names = ", ".join(s.name for s in missing)
            why = (
                "an operator creates them in verify mode (EXHAUST_TOPIC_MODE=verify)"
                if settings.topic_mode == "verify"
                else "the processor creates them"
            )
            raise TopicsMissing(
                f"missing topics {names}: {why}, or this principal may not see them"
            )
        created: set[str] = set()
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        s.name, s.partitions, settings.topic_replication, topic_configs=s.config
                    )
                    for s in missing
                ]
            )
            for entry in response.topic_errors:  # (name, error code, [message, ...])
                name, code = entry[0], entry[1]
                if code == 0:
                    created.add(name)
                elif code != TOPIC_ALREADY_EXISTS:
                    message = entry[2] if len(entry) > 2 and entry[2] else f"error code {code}"
                    raise TopicLayoutError(f"cannot create topic {name}: {message}")
        await _check_layout(admin, settings, [s for s in specs if s.name not in created])
        return [s.name for s in missing if s.name in created]
    finally:
        if own:
            await admin.close()


async def assign_all(consumer: Any, topic: str) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to a group-less aiokafka consumer; return them.

    Raises :class:`TopicLayoutError` when the topic is missing.
    """
    partitions = await partitions_of(consumer, topic)
    consumer.assign(partitions)
    return partitions


async def _check_layout(admin: Any, settings: Settings, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    problems: list[str] = []
    described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in specs])}
    resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.resources:  # (error code, message, type, name, entries)
            if resource[0] == 0:
                configs[resource[3]] = {str(e[0]): str(e[1]) for e in resource[4]}
    # A topic another worker created a moment ago exists on the controller before every
    # broker's metadata has it: the broker that answered reports no partitions or an error.
    # That is a wait, not a wrong layout (three processors starting at once in a cluster).
    unseen = [
        s.name
        for s in specs
        if described.get(s.name, {}).get("error_code", 0) != 0
        or not described.get(s.name, {}).get("partitions")
        or s.name not in configs
    ]
    if unseen:
        raise TopicsMissing(
            f"topics {', '.join(unseen)} exist but the broker does not describe them yet "
            "(just created by another worker)"
        )
    for spec in specs:
        partitions = described.get(spec.name, {}).get("partitions", [])
        if spec.co_partitioned and len(partitions) != spec.partitions:
            problems.append(
                f"{spec.name} has {len(partitions)} partitions, co-partitioning needs "
                f"{spec.partitions} (EXHAUST_TOPIC_PARTITIONS)"
            )
        replicas = min((len(p.get("replicas", ())) for p in partitions if isinstance(p, dict)),
                       default=None)  # fmt: skip
        if replicas is not None and replicas < settings.topic_replication:
            problems.append(
                f"{spec.name} has {replicas} replicas, EXHAUST_TOPIC_REPLICATION asks for "
                f"{settings.topic_replication}"
            )
    for spec in specs:
        config = configs[spec.name]
        policy = config.get("cleanup.policy", "")
        if spec.compacted and "compact" not in policy:
            problems.append(f"{spec.name} has cleanup.policy={policy}, it must be compact")
        if not spec.compacted and policy and "delete" not in policy.split(","):
            problems.append(
                f"{spec.name} has cleanup.policy={policy}, it must be delete (compaction would "
                "drop every event but the last of a key)"
            )
        wanted = settings.topic_min_insync_replicas
        actual = config.get("min.insync.replicas")
        if wanted is not None and actual is not None and int(actual) < wanted:
            problems.append(
                f"{spec.name} has min.insync.replicas={actual}, "
                f"EXHAUST_TOPIC_MIN_INSYNC_REPLICAS asks for {wanted}"
            )
    if problems:
        raise TopicLayoutError("refusing to start: " + "; ".join(problems))
