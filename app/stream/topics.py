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

An existing topic that breaks co-partitioning or compaction is a configuration error: the
service refuses to start with one clear message rather than silently mis-routing jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.domain.errors import TopicLayoutError
from app.settings import Settings
from app.stream.aiokafka_compat import partitions_of

COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    co_partitioned: bool = False


def topic_specs(settings: Settings) -> list[TopicSpec]:
    n = settings.topic_partitions
    return [
        TopicSpec(settings.topic("requests"), n, co_partitioned=True),
        TopicSpec(settings.topic("job-events"), n, co_partitioned=True),
        TopicSpec(settings.topic("jobs"), n, dict(COMPACTED), co_partitioned=True),
        TopicSpec(settings.topic("work"), n),
        TopicSpec(settings.topic("dlq"), n),
        TopicSpec(settings.topic("fills"), n, co_partitioned=True),
        TopicSpec(settings.topic("datasets"), n, dict(COMPACTED), co_partitioned=True),
    ]


TOPIC_ALREADY_EXISTS = 36  # Kafka's error code


async def ensure_topics(
    settings: Settings, specs: list[TopicSpec] | None = None, admin: Any = None
) -> list[str]:
    """Create missing topics, verify existing ones; return the names created.

    Raises :class:`TopicLayoutError` when an existing topic has the wrong partition count
    (co-partitioned topics) or is not compacted when it must be. A topic this call found
    missing but that exists by the time it creates it (another worker was first, or the
    broker's metadata lagged behind a creation) is checked like any existing one: the broker
    answers per topic, and only the topics created here are taken as right.
    """
    specs = specs if specs is not None else topic_specs(settings)
    own = admin is None
    if admin is None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
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
        await _check_layout(admin, [s for s in specs if s.name not in created])
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


async def _check_layout(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    problems: list[str] = []
    described = await admin.describe_topics([s.name for s in specs])
    counts = {t["topic"]: len(t["partitions"]) for t in described}
    for spec in specs:
        if spec.co_partitioned and counts.get(spec.name) != spec.partitions:
            problems.append(
                f"{spec.name} has {counts.get(spec.name)} partitions, co-partitioning needs "
                f"{spec.partitions} (EXHAUST_TOPIC_PARTITIONS)"
            )
    compacted = [s for s in specs if s.config.get("cleanup.policy") == "compact"]
    if compacted:
        resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in compacted]
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                name, entries = resource[3], resource[4]
                policy = next((e[1] for e in entries if e[0] == "cleanup.policy"), "")
                if "compact" not in str(policy):
                    problems.append(f"{name} has cleanup.policy={policy}, it must be compact")
    if problems:
        raise TopicLayoutError("refusing to start: " + "; ".join(problems))
