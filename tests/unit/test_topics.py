"""Topic creation and layout checks against a scripted admin client: a topic the broker says
already exists (created by another worker, or missing from a lagging metadata answer) is
checked like every existing topic. (Found as a flaky integration test: a topic created a
moment earlier was not yet listed, and its wrong cleanup policy went unreported.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from app.domain.errors import TopicLayoutError
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
