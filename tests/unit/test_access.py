"""The Kafka ACLs of each principal: documented as they are granted, least privilege kept."""

from __future__ import annotations

from app.settings import Settings
from app.stream.access import PRINCIPAL_ROLES, grants, markdown_table
from app.stream.topics import topic_specs
from tests.conftest import ROOT


def test_docs_show_the_grants_the_code_makes() -> None:
    assert markdown_table(Settings()) in (ROOT / "docs" / "security.md").read_text()


def test_only_the_processor_creates_topics_and_only_in_create_mode() -> None:
    def creators(settings: Settings) -> list[str]:
        return [r for r in PRINCIPAL_ROLES for g in grants(settings, r) if "Create" in g.operations]

    assert creators(Settings()) == ["processor"]
    assert creators(Settings(topic_mode="verify")) == []


def test_every_grant_names_a_topic_or_group_of_the_service() -> None:
    settings = Settings(topic_prefix="acme", consumer_group="acme-workers")
    topics = {spec.name for spec in topic_specs(settings)}
    groups = {settings.consumer_group, f"{settings.consumer_group}.generators",
              f"{settings.consumer_group}.janitor"}  # fmt: skip
    for role in PRINCIPAL_ROLES:
        for grant in grants(settings, role):
            if grant.resource == "topic" and grant.prefixed:
                assert grant.name == "acme." and set(grant.operations) <= {
                    "Describe", "DescribeConfigs", "Create"
                }  # fmt: skip
            elif grant.resource == "topic":
                assert grant.name in topics
            else:
                assert grant.resource == "group" and grant.name in groups


def test_the_request_producer_may_only_write_requests() -> None:
    found = grants(Settings(), "producer")
    assert [(g.resource, g.name, g.operations) for g in found] == [
        ("topic", "exhaust.requests", ("Write", "Describe"))
    ]
