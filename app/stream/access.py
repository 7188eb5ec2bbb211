"""What each Kafka principal of a deployment may do: the ACLs of least privilege, as data.

One principal per role (``exhaust worker --role``), plus the request producers outside the
service. The secured local stack creates exactly these ACLs (``deploy/local/secure_kafka.py``),
the Kubernetes ``KafkaUser`` resources are checked against them (``deploy/k8s/check.py``), and
docs/security.md shows them; the integration tests run a request to SUCCESS with each role
holding only its own (``tests/integration/test_kafka_security.py``).

Why each grant (R = Read, W = Write; Describe comes with both):

* **processor**: R requests; R/W job-events and fills (W: its TICKs and SWEEPs); R/W jobs
  and datasets (its tables' changelogs, replayed at start); W work and dlq; R its consumer
  group (the Faust app id); Describe of the generators' group (the queue probe that tells a
  queued work item from a lost one); Create of the service's topics in create mode.
* **generator**: R work with its own group; W job-events (STARTED, COMPLETED, FAILED) and dlq;
  R datasets and fills (the view of the managed datasets it exports); R jobs with the
  janitor's group (it deletes what dead attempts left in object storage).
* **api**: W requests, job-events (CANCEL) and fills; R jobs (the read model), datasets and
  fills (the datasets' view and operation status), without a consumer group.
* Both read the fills not yet applied from the writer's committed offsets: Describe of the
  processor's group (offsets only; they cannot join it).
* **producer**: W requests, nothing else: it asks for work, it can neither forge a job's
  progress nor read anyone's results.

Every service role may also describe the service's topics and their configuration (prefixed),
which the start-up check of their layout needs; metadata only, never data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.settings import Settings

PrincipalRole = Literal["processor", "generator", "api", "producer"]
PRINCIPAL_ROLES: tuple[PrincipalRole, ...] = ("processor", "generator", "api", "producer")
SERVICE_ROLES: tuple[PrincipalRole, ...] = ("processor", "generator", "api")

Resource = Literal["topic", "group", "cluster"]


@dataclass(frozen=True, slots=True)
class Grant:
    """Allow ``operations`` on one resource (``prefixed``: every name starting with ``name``)."""

    resource: Resource
    name: str
    operations: tuple[str, ...]
    prefixed: bool = False


def principal(role: PrincipalRole) -> str:
    """The user name of a role's principal (SCRAM user, certificate CN, KafkaUser name)."""
    return f"exhaust-{role}"


def grants(settings: Settings, role: PrincipalRole) -> list[Grant]:
    """The ACLs ``role`` needs under ``settings`` (topic names, groups, topic mode)."""
    t = settings.topic

    def topics(operations: tuple[str, ...], *names: str) -> list[Grant]:
        return [Grant("topic", t(name), operations) for name in names]

    read, write, both = ("Read", "Describe"), ("Write", "Describe"), ("Read", "Write", "Describe")
    layout = ("Describe", "DescribeConfigs")
    generators = f"{settings.consumer_group}.generators"
    if role == "processor":
        found = [
            *topics(read, "requests"),
            *topics(both, "job-events", "fills", "jobs", "datasets"),
            *topics(write, "work", "dlq"),
            Grant("group", settings.consumer_group, ("Read",)),
            Grant("group", generators, ("Describe",)),
        ]
        create = ("Create",) if settings.topic_mode == "create" else ()
        found.append(Grant("topic", f"{settings.topic_prefix}.", (*layout, *create), True))
        return found
    # The datasets' view (generator and API) reads the fills not yet applied: from the
    # writer's committed offsets, which it reads as a describer of the writer's group.
    writer_offsets = Grant("group", settings.consumer_group, ("Describe",))
    if role == "generator":
        return [
            *topics(read, "work", "datasets", "fills", "jobs"),
            *topics(write, "job-events", "dlq"),
            Grant("group", generators, ("Read",)),
            Grant("group", f"{settings.consumer_group}.janitor", ("Read",)),
            writer_offsets,
            Grant("topic", f"{settings.topic_prefix}.", layout, True),
        ]
    if role == "api":
        return [
            *topics(write, "requests", "job-events"),
            *topics(both, "fills"),
            *topics(read, "jobs", "datasets"),
            writer_offsets,
            Grant("topic", f"{settings.topic_prefix}.", layout, True),
        ]
    return topics(write, "requests")


def markdown_table(settings: Settings) -> str:
    """The grants of every principal as the Markdown table of docs/security.md."""
    roles = PRINCIPAL_ROLES
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for role in roles:
        for grant in grants(settings, role):
            name = f"`{grant.name}*`" if grant.prefixed else f"`{grant.name}`"
            rows.setdefault((grant.resource, name), {})[role] = ", ".join(grant.operations)
    header = "| resource | " + " | ".join(f"`{principal(r)}`" for r in roles) + " |"
    lines = [header, "|---|" + "---|" * len(roles)]
    for (resource, name), cells in rows.items():
        values = " | ".join(cells.get(role, "—") for role in roles)
        lines.append(f"| {resource} {name} | {values} |")
    return "\n".join(lines) + "\n"


__all__ = [
    "PRINCIPAL_ROLES",
    "SERVICE_ROLES",
    "Grant",
    "PrincipalRole",
    "grants",
    "markdown_table",
    "principal",
]
