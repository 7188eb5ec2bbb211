"""Topic creation and layout checks against a scripted admin client: a topic the broker says
already exists (created by another worker, or missing from a lagging metadata answer) is
checked like every existing topic. (Found as a flaky integration test: a topic created a
moment earlier was not yet listed, and its wrong cleanup policy went unreported.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from app.domain.errors import TopicLayoutError, TopicsMissing
from app.settings import Settings
from app.stream.topics import TOPIC_ALREADY_EXISTS, ensure_topics, topic_specs

SETTINGS = Settings(topic_prefix="t", topic_partitions=3)


class Admin:
    """Lists ``listed``; on create, answers ``already`` as existing and creates the rest."""

    def __init__(self, listed: list[str], already: dict[str, tuple[int, str]]) -> None:
        self.listed, self.already = listed, already  # name -> (partitions, cleanup.policy)
        self.created: list[str] = []

    async def list_topics(self) -> list[str]:
        return list(self.listed)

    async def create_topics(self, topics: list[Any]) -> Any:
        errors: list[tuple[str, int, str | None]] = []
        for topic in topics:
            if topic.name in self.already:
                errors.append((topic.name, TOPIC_ALREADY_EXISTS, "Topic already exists."))
            else:
                self.created.append(topic.name)
                errors.append((topic.name, 0, None))
        return SimpleNamespace(topic_errors=errors)

    def _layout(self, name: str) -> tuple[int, str]:
        if name in self.already:
            return self.already[name]
        spec = next(s for s in topic_specs(SETTINGS) if s.name == name)
        return spec.partitions, spec.config.get("cleanup.policy", "delete")

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "partitions": list(range(self._layout(n)[0]))} for n in names]

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        rows = [(0, None, 2, r.name, [("cleanup.policy", self._layout(r.name)[1])])
                for r in resources]  # fmt: skip
        return [SimpleNamespace(resources=rows)]


async def test_a_topic_that_appears_between_listing_and_creating_is_checked() -> None:
    admin = Admin(listed=["t.requests"], already={"t.requests": (1, "delete"),
                                                  "t.jobs": (3, "delete")})  # fmt: skip
    with pytest.raises(TopicLayoutError) as caught:
        await ensure_topics(SETTINGS, admin=admin)
    assert "t.requests has 1 partitions" in caught.value.message
    assert "t.jobs has cleanup.policy=delete, it must be compact" in caught.value.message
    assert "t.jobs" not in admin.created


async def test_topics_created_here_are_reported_and_good_existing_ones_pass() -> None:
    admin = Admin(listed=[], already={"t.jobs": (3, "compact")})
    created = await ensure_topics(SETTINGS, admin=admin)
    assert "t.jobs" not in created and "t.requests" in created
    assert created == [s.name for s in topic_specs(SETTINGS) if s.name != "t.jobs"]


async def test_any_other_creation_error_is_a_layout_error_naming_the_topic() -> None:
    class Refusing(Admin):
        async def create_topics(self, topics: list[Any]) -> Any:
            return SimpleNamespace(topic_errors=[(t.name, 37, "Number of partitions is invalid.")
                                                 for t in topics])  # fmt: skip

    with pytest.raises(TopicLayoutError, match=r"cannot create topic t\.requests"):
        await ensure_topics(SETTINGS, admin=Refusing([], {}))


class Described(Admin):
    """An operator's topics: ``replicas`` per partition and extra configs per topic."""

    def __init__(self, replicas: int = 3, configs: dict[str, dict[str, str]] | None = None) -> None:
        super().__init__([s.name for s in topic_specs(SETTINGS)], {})
        self.replicas, self.configs = replicas, configs or {}

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [
            {"topic": n, "partitions": [{"partition": p, "replicas": list(range(self.replicas))}
                                        for p in range(self._layout(n)[0])]}
            for n in names
        ]  # fmt: skip

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        rows = [(0, None, 2, r.name, [("cleanup.policy", self._layout(r.name)[1]),
                                      *self.configs.get(r.name, {}).items()])
                for r in resources]  # fmt: skip
        return [SimpleNamespace(resources=rows)]


VERIFY = SETTINGS.model_copy(
    update={"topic_mode": "verify", "topic_replication": 3, "topic_min_insync_replicas": 2}
)


async def test_verify_mode_creates_nothing_and_waits_for_missing_topics() -> None:
    admin = Admin(listed=["t.requests"], already={})
    with pytest.raises(TopicsMissing, match=r"t\.job-events.*verify mode") as caught:
        await ensure_topics(VERIFY, admin=admin)
    assert caught.value.retryable and admin.created == []
    # A role that may not create (not the processor) waits the same way in create mode.
    with pytest.raises(TopicsMissing, match="the processor creates them"):
        await ensure_topics(SETTINGS, admin=Admin(listed=[], already={}), create=False)


async def test_verify_mode_accepts_an_operators_topics_that_match() -> None:
    insync = {s.name: {"min.insync.replicas": "2"} for s in topic_specs(SETTINGS)}
    assert await ensure_topics(VERIFY, admin=Described(3, insync)) == []


async def test_verify_mode_refuses_too_few_replicas_weak_insync_or_a_compacted_event_topic() -> (
    None
):
    configs = {"t.requests": {"cleanup.policy": "compact", "min.insync.replicas": "1"}}
    with pytest.raises(TopicLayoutError) as caught:
        await ensure_topics(VERIFY, admin=Described(1, configs))
    message = caught.value.message
    assert "t.work has 1 replicas, EXHAUST_TOPIC_REPLICATION asks for 3" in message
    assert "t.requests has min.insync.replicas=1" in message
    assert "t.requests has cleanup.policy=compact, it must be delete" in message


def test_created_topics_carry_retention_and_min_insync() -> None:
    specs = {s.name: s.config for s in topic_specs(VERIFY)}
    assert specs["t.requests"]["retention.ms"] == str(168 * 3_600_000)
    assert specs["t.dlq"]["retention.ms"] == str(720 * 3_600_000)
    assert "retention.ms" not in specs["t.jobs"] and specs["t.jobs"]["cleanup.policy"] == "compact"
    assert all(config["min.insync.replicas"] == "2" for config in specs.values())


async def test_a_topic_the_answering_broker_does_not_describe_yet_is_waited_for() -> None:
    """Three processors start at once: one creates the topics, the others find them existing
    but described by a broker whose metadata lags (no partitions, an error code, no configs)."""

    class Lagging(Admin):
        async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
            return [{"topic": n, "error_code": 3, "partitions": []} for n in names]

        async def describe_configs(self, resources: list[Any]) -> list[Any]:
            return [SimpleNamespace(resources=[(3, "unknown", 2, r.name, []) for r in resources])]

    names = [s.name for s in topic_specs(SETTINGS)]
    with pytest.raises(TopicsMissing, match="does not describe them yet") as caught:
        await ensure_topics(SETTINGS, admin=Lagging(names, {}))
    assert caught.value.retryable
