"""HTTP behaviour without a broker: channel isolation, validation, error envelopes."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet

from app.api.kernel import job_view
from app.api.server import create_web_app
from app.catalog.loader import default_catalog
from app.domain.model import DatasetRequest, Job, OutputFile
from app.health import Health
from app.metrics import Metrics
from app.sealing import Sealer
from app.settings import Settings
from app.stream.read_model import Change, ReadModel
from tests.corpus import load, many_columns, nested_json, nested_objects
from tests.fakes import MemoryStore, api_context

Client = TestClient[web.Request, web.Application]
SEALER = Sealer(Fernet.generate_key())


def job(request_id: str, channel: str, status: str = "SUCCESS") -> Job:
    return Job(
        request_id=request_id, tag="t1", dataset="demo-export", channel=channel,
        requested_by="u", status=status, last_updated=1, config="{}", fingerprint="f",  # type: ignore[arg-type]
        attempt=1, max_attempts=3, submitted_at=1,
        outputs=[OutputFile(key=f"{channel}/demo-export/{request_id}/1/data.csv", rows=1, bytes=1, sha256="x")],
    )  # fmt: skip


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[Client, list[DatasetRequest]]]:
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    read_model.apply(
        [Change(0, 0, "mine", job("mine", "acme")), Change(0, 1, "theirs", job("theirs", "evil"))]
    )
    submitted: list[DatasetRequest] = []

    async def submit(request: DatasetRequest) -> None:
        submitted.append(request)

    context = api_context(
        settings=Settings(), health=Health(), metrics=Metrics(), catalog=default_catalog(),
        read_model=read_model, store=MemoryStore(), submit=submit, sealer=SEALER,
    )  # fmt: skip
    async with TestClient(TestServer(create_web_app(context))) as test_client:
        yield test_client, submitted
    read_model.close()


async def test_a_channel_never_sees_another_channels_jobs_or_links(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    response = await http.get("/v1/jobs/theirs", headers={"X-Channel-ID": "acme"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "NOT_FOUND"
    listing = await (await http.get("/v1/jobs", headers={"X-Channel-ID": "acme"})).json()
    assert [j["request_id"] for j in listing["jobs"]] == ["mine"]
    links = [u for j in listing["jobs"] for u in j["download_urls"]]
    assert links and all("acme/" in u and "evil" not in u for u in links)


async def test_a_cancel_of_a_job_that_has_ended_is_409_with_its_status(tmp_path: Path) -> None:
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    read_model.apply([Change(0, 0, "acme/done", job("done", "acme")),
                      Change(0, 1, "acme/busy", job("busy", "acme", status="PROCESSING"))])  # fmt: skip
    cancelled: list[Job] = []

    async def cancel(found: Job) -> None:
        cancelled.append(found)

    context = api_context(read_model=read_model, cancel=cancel)
    async with TestClient(TestServer(create_web_app(context))) as http:
        channel = {"X-Channel-ID": "acme"}
        response = await http.post("/v1/jobs/done/cancel", headers=channel)
        assert response.status == 409
        error = (await response.json())["error"]
        assert (error["code"], error["status"]) == ("ALREADY_FINISHED", "SUCCESS")
        assert cancelled == []
        response = await http.post("/v1/jobs/busy/cancel", headers=channel)
        assert response.status == 202 and (await response.json())["status"] == "CANCEL_REQUESTED"
        assert [j.request_id for j in cancelled] == ["busy"]
    read_model.close()


async def test_the_channel_header_is_required(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    for path in ("/v1/jobs", "/v1/jobs/mine"):
        response = await http.get(path)
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "ACCESS_DENIED"


async def test_submission_is_validated_before_anything_is_published(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, submitted = client
    headers = {"X-Channel-ID": "acme"}
    cases = [
        ({"tag": "t", "dataset": "nope"}, 400, "UNKNOWN_DATASET"),
        ({"tag": "t", "dataset": "demo-export", "config": {"rows": -1}}, 400, "INVALID_CONFIG"),
        ({"dataset": "demo-export"}, 400, "MALFORMED_REQUEST"),
        ({"tag": "a b/c", "dataset": "demo-export"}, 400, "INVALID_IDENTIFIER"),
        ({"tag": "t", "dataset": "demo-export", "request_id": "../x"}, 400, "INVALID_IDENTIFIER"),
        ({"tag": "t", "dataset": "demo-export", "columns": "id"}, 400, "MALFORMED_REQUEST"),
        (["not", "an", "object"], 400, "MALFORMED_REQUEST"),
        ({"tag": "t", "dataset": "demo-export", "request_id": "mine"}, 409, "REQUEST_CONFLICT"),
        # the shapes of ids the service derives (Sunbird/standard ids, download file names)
        (
            {
                "tag": "t",
                "dataset": "demo-export",
                "request_id": "0123456789ABCDEF0123456789ABCDEF",
            },
            400,
            "INVALID_IDENTIFIER",
        ),
        (
            {
                "tag": "t",
                "dataset": "demo-export",
                "request_id": "1764547200000_0badf00d_awards.zip",
            },
            400,
            "INVALID_IDENTIFIER",
        ),
    ]
    for body, status, code in cases:
        response = await http.post("/v1/requests", json=body, headers=headers)
        assert response.status == status, body
        assert (await response.json())["error"]["code"] == code
    not_json = await http.post("/v1/requests", data=b"{nope", headers=headers)
    assert not_json.status == 400
    assert (await not_json.json())["error"]["code"] == "MALFORMED_REQUEST"
    for channel in ("../../../../tmp/x", "a b/c", "a..b"):
        bad = await http.post(
            "/v1/requests",
            json={"tag": "t", "dataset": "demo-export"},
            headers={"X-Channel-ID": channel},
        )
        assert bad.status == 400 and (await bad.json())["error"]["code"] == "INVALID_IDENTIFIER"
    assert submitted == []
    # Ids are per channel: another channel's id is free here, and nothing says it exists there.
    same = await http.post(
        "/v1/requests", json={"tag": "t", "dataset": "demo-export", "request_id": "theirs"},
        headers=headers,
    )  # fmt: skip
    assert same.status == 202 and await same.json() == {
        "request_id": "theirs",
        "status": "SUBMITTED",
    }
    assert [(r.channel, r.request_id) for r in submitted] == [("acme", "theirs")]
    submitted.clear()
    ok = await http.post(
        "/v1/requests",
        json={"tag": "t", "dataset": "demo-export", "encryption_key": "k-secret"},
        headers=headers,
    )
    assert ok.status == 202
    body = await ok.json()
    assert body["status"] == "SUBMITTED" and len(body["request_id"]) == 32
    assert [r.channel for r in submitted] == ["acme"] and "k-secret" not in str(body)
    sealed = submitted[0].encryption_key  # published sealed: Kafka never sees the clear key
    assert sealed is not None and sealed.startswith("sealed:v1:")
    assert SEALER.open(sealed) == "k-secret"
    # A sealed token copied from a topic is sealed again as the text it is: its password is
    # that text, never the key sealed inside it.
    submitted.clear()
    copied = await http.post(
        "/v1/requests", json={"tag": "t2", "dataset": "demo-export", "encryption_key": sealed},
        headers=headers,
    )  # fmt: skip
    assert copied.status == 202
    again = submitted[0].encryption_key
    assert again is not None and again != sealed and SEALER.open(again) == sealed
    # Empty and short keys are refused: an empty password would make a plain zip.
    for key in ("", "short", "x" * 1025):
        refused = await http.post(
            "/v1/requests", json={"tag": "t3", "dataset": "demo-export", "encryption_key": key},
            headers=headers,
        )  # fmt: skip
        assert refused.status == 400, key
        assert (await refused.json())["error"]["code"] == "INVALID_ENCRYPTION_KEY"


async def test_a_public_type_gets_plain_links_and_others_presigned_ones(tmp_path: Path) -> None:
    (tmp_path / "open.yaml").write_text(
        "name: open-data\ndescription: Public rows.\nkind: table-export\n"
        "config_schema: {type: object}\nsources: {source: {config: source}}\npublic: true\n"
    )
    catalog = default_catalog([tmp_path])
    settings = Settings(public_base_url="https://cdn.example.org/exhaust/")
    store = MemoryStore()
    public = job("p1", "acme").replace(dataset="open-data").to_record()
    public["outputs"][0]["key"] = "public/acme/open-data/p1/1/a~b.csv"
    view = job_view(public, store, settings, catalog)
    # The base URL serves the public prefix alone: it could not name any other object.
    assert view["download_urls"] == ["https://cdn.example.org/exhaust/acme/open-data/p1/1/a~b.csv"]
    legacy = dict(public, outputs=[dict(public["outputs"][0], key="acme/open-data/p1/1/x.csv")])
    old = job_view(legacy, store, settings, catalog)  # written before the public prefix
    assert old["download_urls"][0].startswith("memory://") and old["links_expire_at"]
    # A record from the topic naming files outside its own attempt: never linked.
    forged = dict(public, outputs=[dict(public["outputs"][0], key=key) for key in (
        "acme/open-data/p1/1/../../../evil/x.csv", "evil/open-data/p1/1/data.csv",
        "acme/open-data/p1/2/data.csv", "acme/inputs/secret.csv", "public/evil/open-data/p1/1/x",
        "public/acme/open-data/p1/1/../../../../acme/x.csv")])  # fmt: skip
    assert job_view(forged, store, settings, catalog)["download_urls"] == []
    assert job_view(forged, store, Settings(), catalog)["download_urls"] == []
    assert view["links_expire_at"] is None
    private = job_view(job("p2", "acme").to_record(), store, settings, catalog)
    assert private["download_urls"][0].startswith("memory://") and private["links_expire_at"]
    unset = job_view(public, store, Settings(), catalog)  # no public base URL: presigned
    assert unset["download_urls"][0].startswith("memory://")


async def test_listing_rejects_bad_parameters(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, _ = client
    for query in ("status=DONE", "limit=0", "limit=abc", "cursor=zzz"):
        response = await http.get(f"/v1/jobs?{query}", headers={"X-Channel-ID": "acme"})
        assert response.status == 400, query


KEY = "k-acme-0123456789abcdef"


async def test_with_api_keys_every_profile_takes_the_channel_from_the_key(tmp_path: Path) -> None:
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    read_model.apply([Change(0, 0, "mine", job("mine", "acme")),
                      Change(0, 1, "theirs", job("theirs", "evil"))])  # fmt: skip
    settings = Settings(api_keys='{"' + KEY + '": "acme"}')
    context = api_context(settings=settings, health=Health(), metrics=Metrics(),
                         catalog=default_catalog(), read_model=read_model, store=MemoryStore())  # fmt: skip
    async with TestClient(TestServer(create_web_app(context))) as http:
        for headers in (
            {},
            {"X-Channel-ID": "acme"},
            {"Authorization": "Bearer wrong-key-123456789"},
        ):
            response = await http.get("/v1/jobs/mine", headers=headers)
            assert response.status == 403, headers
            assert (await response.json())["error"]["code"] == "ACCESS_DENIED"
        for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY},
                        {"X-API-Key": KEY, "X-Channel-ID": "acme"}):  # fmt: skip
            response = await http.get("/v1/jobs/mine", headers=headers)
            assert response.status == 200, headers
        # The key's channel, not the header's: another channel's job is not found, a header
        # naming another channel is refused.
        assert (await http.get("/v1/jobs/theirs", headers={"X-API-Key": KEY})).status == 404
        mixed = await http.get("/v1/jobs/mine", headers={"X-API-Key": KEY, "X-Channel-ID": "evil"})
        assert mixed.status == 403
        # Every profile: Sunbird, USAspending, Learnosity-style (no consumers configured).
        sunbird = await http.get("/dataset/v1/request/list/t1", headers={"X-Channel-ID": "acme"})
        assert sunbird.status == 403 and (await sunbird.json())["params"]["err"] == "FORBIDDEN"
        assert sunbird.headers["X-Exhaust-Error-Code"] == "ACCESS_DENIED"
        usa = await http.get("/v2/download/status?file_name=x", headers={"X-Channel-ID": "acme"})
        assert usa.status == 403
        lrn = await http.post("/v1/jobs", json={"action": "get", "request": {}},
                              headers={"X-Channel-ID": "acme"})  # fmt: skip
        assert lrn.status == 403
        ok = await http.post("/v1/jobs", json={"action": "get", "request": {}},
                             headers={"X-API-Key": KEY})  # fmt: skip
        assert ok.status == 200
        # Sunbird's public datasets stay unauthenticated: the channel header alone.
        public = await http.get("/public/dataset/get/public-summary-rollup",
                                headers={"X-Channel-ID": "acme"})  # fmt: skip
        assert public.status != 403
    read_model.close()


async def test_an_oversized_body_is_refused_before_it_is_read(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, submitted = client
    big = b'{"tag": "' + b"x" * (1024 * 1024) + b'"}'
    for path in ("/v1/requests", "/dataset/v1/request/submit", "/v2/download/awards"):
        response = await http.post(path, data=io.BytesIO(big), headers={"X-Channel-ID": "acme",
                                                            "Content-Type": "application/json"})  # fmt: skip
        assert response.status == 413, path
        assert "EXHAUST_MAX_REQUEST_BYTES" in await response.text()
    form = await http.post("/v1/jobs", data=io.BytesIO(b"request=" + b"x" * (1024 * 1024)),
                           headers={"X-Channel-ID": "acme",
                                    "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert form.status == 413
    assert submitted == []


async def test_every_hostile_object_key_is_refused_at_the_door_in_inputs_and_config_source(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, submitted = client
    headers = {"X-Channel-ID": "acme"}
    for key in load("object_keys"):
        for body in (
            {"tag": "t", "dataset": "table-export", "inputs": [key], "config": {"source": "x"}},
            {"tag": "t", "dataset": "table-export", "config": {"source": key}},
        ):
            response = await http.post("/v1/requests", json=body, headers=headers)
            assert response.status == 400, (key, body)
            code = (await response.json())["error"]["code"]
            assert code in ("INVALID_OBJECT_KEY", "MALFORMED_REQUEST", "INVALID_CONFIG"), key
    many = [f"acme/inputs/{n}.csv" for n in range(Settings().max_inputs + 1)]
    response = await http.post(
        "/v1/requests", json={"tag": "t", "dataset": "table-export", "inputs": many,
                              "config": {"source": "x"}}, headers=headers,
    )  # fmt: skip
    assert response.status == 413 and (await response.json())["error"]["code"] == "TOO_MANY_INPUTS"
    assert submitted == []


async def test_roles_come_from_the_api_key_never_from_the_body(tmp_path: Path) -> None:
    (tmp_path / "payroll.yaml").write_text(
        "name: payroll-export\ndescription: Finance only.\nkind: table-export\n"
        "config_schema: {type: object}\nsources: {source: {config: source}}\n"
        "access: {roles: [finance]}\n"
    )
    finance, plain = "k-finance-0123456789", "k-plain-0123456789ab"
    keys = {finance: {"channel": "acme", "roles": ["finance"]}, plain: "acme"}
    submitted: list[DatasetRequest] = []

    async def submit(request: DatasetRequest) -> None:
        submitted.append(request)

    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    context = api_context(
        settings=Settings(api_keys=json.dumps(keys)), health=Health(), metrics=Metrics(),
        catalog=default_catalog([tmp_path]), read_model=read_model, store=MemoryStore(),
        submit=submit, sealer=SEALER,
    )  # fmt: skip
    body = {"tag": "t", "dataset": "payroll-export", "config": {"source": "pay"}}
    async with TestClient(TestServer(create_web_app(context))) as http:
        # A key without the role: the type does not exist for it, whatever the body says.
        for labels in (None, {"role": "finance"}, {"role": "finance,admin"}):
            response = await http.post(
                "/v1/requests", json={**body, "labels": labels} if labels else body,
                headers={"X-API-Key": plain, "X-Exhaust-Roles": "finance"},
            )  # fmt: skip
            assert response.status == 400, labels
            code = (await response.json())["error"]["code"]
            assert code == ("UNKNOWN_DATASET" if labels is None else "INVALID_CONFIG"), labels
        # The key with the role may; what reaches the topic says the key's roles.
        response = await http.post("/v1/requests", json=body, headers={"X-API-Key": finance})
        assert response.status == 202
        assert [r.labels for r in submitted] == [{"role": "finance"}]
    read_model.close()


async def test_hostile_json_is_a_4xx_on_every_route_that_reads_a_body(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    """Deep nesting (a RecursionError in json.loads), numbers no layer can hold, not-JSON
    constants: refused with a code, never a 500."""
    http, submitted = client
    headers = {"X-Channel-ID": "acme", "Content-Type": "application/json"}
    bodies = [nested_json(), nested_objects(), nested_json(65)]
    for number in load("numbers"):
        if number not in ("1", "1.7976931348623157e308"):
            bodies.append(
                f'{{"tag": "t", "dataset": "demo-export", "config": {{"rows": {number}}}}}'.encode()
            )
    paths = ["/v1/requests", "/dataset/v1/request/submit", "/v2/download/awards",
             "/v2/download/transactions", "/v1/jobs", "/v1/reports/datasets"]  # fmt: skip
    for path in paths:
        for body in bodies:
            response = await http.post(path, data=body, headers=headers)
            assert 400 <= response.status < 500, (path, body[:40], response.status)
            assert response.content_type == "application/json"
    assert submitted == []


async def test_unicode_edge_cases_and_ten_thousand_columns_are_refused_with_codes(
    client: tuple[Client, list[DatasetRequest]],
) -> None:
    http, submitted = client
    headers = {"X-Channel-ID": "acme"}
    for value in load("unicode") + load("identifiers"):
        for field in ("tag", "dataset", "request_id"):
            if field == "request_id" and value is None:  # no id: the service derives one
                continue
            body = {"tag": "t", "dataset": "demo-export", field: value}
            response = await http.post("/v1/requests", json=body, headers=headers)
            assert response.status == 400, (field, value)
            code = (await response.json())["error"]["code"]
            assert code in ("INVALID_IDENTIFIER", "MALFORMED_REQUEST"), (field, value)
        response = await http.get("/v1/jobs", headers={"X-Channel-ID": value} if isinstance(
            value, str) and value.isprintable() and value.isascii() else {})  # fmt: skip
        assert response.status in (400, 403)
    wide = {"tag": "t", "dataset": "demo-export", "columns": many_columns()}
    response = await http.post("/v1/requests", json=wide, headers=headers)
    assert response.status == 400
    assert (await response.json())["error"]["code"] in ("UNKNOWN_COLUMN", "INVALID_CONFIG")
    assert submitted == []


async def test_a_gateways_roles_header_is_checked_and_gates_types(tmp_path: Path) -> None:
    (tmp_path / "payroll.yaml").write_text(
        "name: payroll-export\ndescription: Finance only.\nkind: table-export\n"
        "config_schema: {type: object}\nsources: {source: {config: source}}\n"
        "access: {roles: [finance]}\n"
    )
    submitted: list[DatasetRequest] = []

    async def submit(request: DatasetRequest) -> None:
        submitted.append(request)

    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    context = api_context(
        settings=Settings(), health=Health(), metrics=Metrics(),
        catalog=default_catalog([tmp_path]), read_model=read_model, store=MemoryStore(),
        submit=submit, sealer=SEALER,
    )  # fmt: skip
    body = {"tag": "t", "dataset": "payroll-export", "config": {"source": "pay"}}
    async with TestClient(TestServer(create_web_app(context))) as http:
        for roles, status, code in (("", 400, "UNKNOWN_DATASET"), ("../x", 400,
                                     "INVALID_IDENTIFIER"), ("a b,finance", 400,
                                     "INVALID_IDENTIFIER"), ("sales", 400, "UNKNOWN_DATASET")):  # fmt: skip
            response = await http.post(
                "/v1/requests",
                json=body,
                headers={"X-Channel-ID": "acme", "X-Exhaust-Roles": roles},
            )
            assert response.status == status, roles
            assert (await response.json())["error"]["code"] == code, roles
        ok = await http.post("/v1/requests", json=body,
                             headers={"X-Channel-ID": "acme", "X-Exhaust-Roles": "sales, finance"})  # fmt: skip
        assert ok.status == 202
        assert [r.labels for r in submitted] == [{"role": "finance,sales"}]
    read_model.close()


async def test_dataset_types_are_listed_with_their_config_schema_to_whom_may_request_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "payroll.yaml").write_text(
        "name: payroll-export\ndescription: Finance only.\nkind: table-export\n"
        "config_schema: {type: object, properties: {source: {type: string}}}\n"
        "sources: {source: {config: source}}\naccess: {roles: [finance]}\n"
    )
    read_model = ReadModel(tmp_path / "rm.sqlite3", "jobs")
    context = api_context(
        settings=Settings(), health=Health(), metrics=Metrics(),
        catalog=default_catalog([tmp_path]), read_model=read_model, store=MemoryStore(),
        sealer=SEALER,
    )  # fmt: skip
    async with TestClient(TestServer(create_web_app(context))) as http:
        answer = await http.get("/v1/dataset-types", headers={"X-Channel-ID": "acme"})
        names = [t["name"] for t in (await answer.json())["dataset_types"]]
        assert "demo-export" in names and "payroll-export" not in names  # not this caller's
        demo = await (
            await http.get("/v1/dataset-types/demo-export", headers={"X-Channel-ID": "acme"})
        ).json()
        rows = demo["config_schema"]["properties"]["rows"]
        assert (rows["type"], rows["minimum"], rows["default"]) == ("integer", 0, 100)
        assert demo["columns"] == ["id", "day", "category", "value"]
        hidden = await http.get(
            "/v1/dataset-types/payroll-export", headers={"X-Channel-ID": "acme"}
        )
        assert hidden.status == 404  # as unknown as a type that does not exist
        finance = await http.get("/v1/dataset-types/payroll-export",
                                 headers={"X-Channel-ID": "acme", "X-Exhaust-Roles": "finance"})  # fmt: skip
        assert (await finance.json())["config_schema"]["properties"] == {
            "source": {"type": "string"}
        }
    read_model.close()


def test_a_job_shows_its_parameters_as_json_its_zip_and_a_link_to_its_own_manifest() -> None:
    own = job("r1", "acme").replace(
        config='{"rows": 5}', filters='{"column": "day", "op": "=", "value": "x"}',
        output={"format": "CSV", "compression": "NONE", "rows_per_file": None,
                "partition_by": None},
        has_encryption_key=True, manifest_key="acme/demo-export/r1/1/manifest.json",
    )  # fmt: skip
    view = job_view(own.to_record(), MemoryStore(), Settings(), default_catalog())
    assert view["config"] == {"rows": 5} and view["filters"]["op"] == "="
    assert view["output"]["compression"] == "ZIP"  # what a key makes of the files
    assert view["manifest_url"].startswith("memory://acme/demo-export/r1/1/manifest.json")
    # A record naming a manifest outside its own attempt (another channel's) links nothing.
    stray = own.replace(manifest_key="other/demo-export/r9/1/manifest.json")
    assert (
        job_view(stray.to_record(), MemoryStore(), Settings(), default_catalog())["manifest_url"]
        is None
    )
    plain = job_view(job("r2", "acme").to_record(), MemoryStore(), Settings(), default_catalog())
    assert plain["filters"] is None and plain["config"] == {}
