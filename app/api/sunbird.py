"""The Sunbird data-exhaust API over the event core: same paths, envelopes, field
names, status words and messages, so Sunbird's clients work unchanged.

* ``POST /dataset/v1/request/submit`` publishes a ``DatasetRequest`` (the tag is stored as
  ``tag:channel``, the request id is Sunbird's MD5 of dataset, tag, requester, channel and day);
* ``GET /dataset/v1/request/read/{tag}?requestId=`` and ``GET /dataset/v1/request/list/{tag}``
  answer from the read model, links presigned at read time;
* ``GET /dataset/get/{datasetId}?from=&to=|since=`` lists the channel's standard datasets
  (types declared ``schedule: daily``) day by day; ``GET /public/dataset/get/{datasetId}`` the
  same for public types, with plain links under the public base URL and no authentication
  beyond the channel header.

Every answer is Sunbird's envelope ``{id, ver, ts, params, responseCode, result}``; an error
is the same envelope with ``params.status = "failed"``, ``params.err`` the response code and
``params.errmsg`` the message, as Sunbird answers them (our error code in the
``X-Exhaust-Error-Code`` header). docs/sunbird.md lists where this profile deliberately
differs from Sunbird and the settings that switch to Sunbird's behaviour. Channel isolation as
everywhere: another channel's job or file does not exist for the caller.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from app.api.edge import (
    authenticated_user,
    caller_of,
    channel_of,
    json_response,
    read_json,
    settings_of,
)
from app.api.kernel import (
    Profile,
    accept,
    ctx,
    download_links,
    own_outputs,
    public_link,
)
from app.api.openapi import (
    ANY_OBJECT,
    CHANNEL,
    INTEGER,
    STRING,
    Schema,
    answer,
    errors,
    header,
    nullable,
    obj,
    operation,
    path,
    query,
)
from app.catalog.types import Catalog, DatasetType
from app.domain import identifiers, standard
from app.domain.dedup import sunbird_request_id
from app.domain.errors import (
    ExhaustError,
    InvalidConfig,
    MalformedRequest,
    NotFound,
    RequestConflict,
)
from app.domain.model import PUBLIC_PREFIX, DatasetRequest
from app.settings import Settings

SUBMIT = "ekstep.analytics.job.request.submit"
INFO = "ekstep.analytics.job.request.info"
LIST = "ekstep.analytics.job.request.list"
TELEMETRY = "org.ekstep.analytics.telemetry"

# Our states in Sunbird's four words. A cancelled or expired job reads FAILED with its reason in
# statusMessage; submitting it again regenerates it.
WORDS: dict[str, str] = {
    "SUBMITTED": "SUBMITTED",
    "AWAITING_INPUT": "SUBMITTED",
    "PROCESSING": "PROCESSING",
    "SUCCESS": "SUCCESS",
    "FAILED": "FAILED",
    "CANCELLED": "FAILED",
    "EXPIRED": "FAILED",
}
STATES_OF: dict[str, tuple[str, ...]] = {
    word: tuple(state for state, w in WORDS.items() if w == word) for word in set(WORDS.values())
}
RESPONSE_CODES = {400: "CLIENT_ERROR", 403: "FORBIDDEN", 404: "RESOURCE_NOT_FOUND",
                  409: "CLIENT_ERROR", 413: "CLIENT_ERROR", 503: "SERVICE_UNAVAILABLE"}  # fmt: skip
MAX_LIST = 1000
NO_PUBLIC_FILES = (
    "Files are not available for requested date. Might not yet generated. Please come back later"
)

Handler = Callable[[web.Request], Awaitable[dict[str, Any]]]
MSGID = web.RequestKey("sunbird_msgid", str)  # the client's params.msgid, echoed back


def utc_now() -> dt.datetime:
    """The profile's one clock (the day of a request id, date ranges, timestamps); tests pin it."""
    return dt.datetime.now(dt.UTC)


def now_ms() -> int:
    """Epoch milliseconds of :func:`utc_now` (the one clock; tests set the day through it)."""
    return int(utc_now().timestamp() * 1000)


def timestamp() -> str:
    return utc_now().isoformat(timespec="milliseconds")


def envelope(
    api_id: str, result: dict[str, Any] | None, msgid: str | None = None, **params: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": api_id,
        "ver": "1.0",
        "ts": timestamp(),
        "params": {"resmsgid": str(uuid.uuid4()), "msgid": msgid, "status": "successful"} | params,
        "responseCode": "OK",
        "result": result,
    }
    return body


class FailedWithOk(Exception):
    """Sunbird's answer to a job it does not have: HTTP 200, ``params.status`` failed and
    ``responseCode`` OK (served when ``EXHAUST_SUNBIRD_UNKNOWN_JOB=200``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def failed(
    api_id: str, request: web.Request, message: str, response_code: str, **extra: Any
) -> dict[str, Any]:
    """Sunbird's failed envelope (``CommonUtil.errorResponse``): ``params.err`` is the response
    code, ``params.errmsg`` the message, no result."""
    body = envelope(api_id, None, request.get(MSGID), **extra)
    body["params"] |= {"status": "failed", "err": response_code, "errmsg": message}
    body["responseCode"] = response_code
    return body


def api(api_id: str, **extra_params: Any) -> Callable[[Handler], Callable[..., Any]]:
    """A handler returning ``result`` becomes one answering Sunbird's envelope; an
    :class:`ExhaustError` becomes the failed envelope with its HTTP status, our error code in
    the ``X-Exhaust-Error-Code`` header (the body keeps Sunbird's fields)."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        @functools.wraps(handler)
        async def answer(request: web.Request) -> web.Response:
            try:
                result = await handler(request)
            except ExhaustError as exc:
                code = RESPONSE_CODES.get(exc.http_status, "SERVER_ERROR")
                response = json_response(failed(api_id, request, exc.message, code,
                                                **extra_params), exc.http_status)  # fmt: skip
                response.headers["X-Exhaust-Error-Code"] = exc.code
                return response
            except FailedWithOk as soft:
                return json_response(failed(api_id, request, soft.message, "OK", **extra_params))
            return json_response(envelope(api_id, result, request.get(MSGID), **extra_params))

        return answer

    return wrap


def job_status_response(request: web.Request, record: dict[str, Any]) -> dict[str, Any]:
    """A ``JobStatus`` record as Sunbird's ``JobStatusResponse`` (epoch milliseconds)."""
    context = ctx(request)
    settings = context.settings
    _, store = context.read_model, context.store
    urls: list[str] = []
    expires: int | None = None
    if record["status"] == "SUCCESS":
        urls, expires = download_links(record, store, settings, context.catalog)
    # Sunbird always answers an expiry: now + the link lifetime when no link expires.
    expires_at = expires if expires is not None else now_ms() + settings.link_expiry_seconds * 1000
    processed = record["status"] in ("SUCCESS", "FAILED")
    response: dict[str, Any] = {
        "requestId": record["request_id"],
        "tag": record["tag"],
        "dataset": record["dataset"],
        "requestedBy": record["requested_by"],
        "requestedChannel": record["channel"],
        "status": WORDS[record["status"]],
        "lastUpdated": record["last_updated"],
        "datasetConfig": json.loads(record["config"] or "{}"),
        "downloadUrls": urls,
        "expiresAt": expires_at,
        "jobStats": {
            "dtJobSubmitted": record["submitted_at"],
            "dtJobCompleted": record["completed_at"] if processed else None,
            "executionTime": record["execution_ms"] if processed else None,
        },
        "attempts": record["attempts"],
    }
    if record.get("error") and WORDS[record["status"]] == "FAILED":
        response["statusMessage"] = record["error"]["message"]
    elif record["status"] in ("CANCELLED", "EXPIRED"):
        response["statusMessage"] = f"the job is {record['status'].lower()}; submit it again"
    return response


def pending_response(
    dataset_request: DatasetRequest, request_id: str, ctx_expiry_ms: int
) -> dict[str, Any]:
    """The answer to a first submission, before the writer has recorded the job (the links'
    expiry is reckoned as for any job without links: now + the link lifetime)."""
    return {
        "requestId": request_id,
        "tag": dataset_request.tag,
        "dataset": dataset_request.dataset,
        "requestedBy": dataset_request.requested_by,
        "requestedChannel": dataset_request.channel,
        "status": "SUBMITTED",
        "lastUpdated": dataset_request.submitted_at,
        "datasetConfig": json.loads(dataset_request.config),
        "downloadUrls": [],
        "expiresAt": now_ms() + ctx_expiry_ms,
        "jobStats": {
            "dtJobSubmitted": dataset_request.submitted_at,
            "dtJobCompleted": None,
            "executionTime": None,
        },
        "attempts": 0,
    }


def stored_tag(tag: str, channel: str) -> str:
    """Sunbird stores ``tag:channel``; a path may carry either form."""
    suffix = f":{channel}"
    full = tag if tag.endswith(suffix) else tag + suffix
    if not identifiers.is_valid(full):
        raise InvalidConfig(
            f"tag {tag[:80]!r} with its channel ({full[:80]!r}…) is not a valid identifier "
            f"({identifiers.RULE})"
        )
    return full


def parse_submit(body: Any, request: web.Request, channel: str) -> DatasetRequest:
    if not isinstance(body, dict):
        raise MalformedRequest("body must be a JSON object")
    params = body.get("params")
    if isinstance(params, dict) and isinstance(params.get("msgid"), str):
        request[MSGID] = params["msgid"]
    req = body.get("request")
    if not isinstance(req, dict):
        raise MalformedRequest("request is required (a JSON object)")
    # Sunbird's own checks, in its order and words.
    for name in ("tag", "dataset", "datasetConfig"):
        if req.get(name) in (None, "", {}):
            raise InvalidConfig(f"{name} is empty")
    tag, dataset, config = req["tag"], req["dataset"], req["datasetConfig"]
    if not isinstance(tag, str) or not isinstance(dataset, str):
        raise MalformedRequest("tag and dataset must be strings")
    if not isinstance(config, dict):
        raise MalformedRequest("datasetConfig must be a JSON object")
    identifiers.check("tag", tag)
    identifiers.check("dataset", dataset)
    given_by = req.get("requestedBy")
    requested_by = given_by or authenticated_user(request)
    if not isinstance(requested_by, str) or not requested_by:
        raise InvalidConfig("requestedBy is empty (give it, or the X-Authenticated-Userid header)")
    identifiers.check("requestedBy", requested_by)
    key = req.get("encryptionKey")
    if key is not None and not isinstance(key, str):
        raise MalformedRequest("encryptionKey must be a string")
    submitted_at = now_ms()
    zone = zoneinfo.ZoneInfo(settings_of(request).sunbird_request_day_timezone)
    day = dt.datetime.fromtimestamp(submitted_at / 1000, zone).date().isoformat()
    request_id = req.get("requestId")
    if request_id is None:
        # As Sunbird: the body's requestedBy (empty when only the gateway's header names the
        # user), the server's day, and the datasetConfig's type when it has one.
        job_type = config.get("type") if isinstance(config.get("type"), str) else None
        request_id = sunbird_request_id(dataset, tag, given_by if isinstance(given_by, str)
                                        else "", channel, day, job_type)  # fmt: skip
    else:  # a client's own id may not take the shape of the ids derived here
        identifiers.check_client_id("requestId", request_id)
    return DatasetRequest(
        request_id=identifiers.check("requestId", request_id),
        tag=stored_tag(tag, channel),
        dataset=dataset,
        channel=channel,
        requested_by=requested_by,
        config=json.dumps(config, sort_keys=True),
        encryption_key=key,  # an empty one is refused, not read as "no key"
        submitted_at=submitted_at,
    )


@api(SUBMIT)
async def submit(request: web.Request) -> dict[str, Any]:
    caller = caller_of(request)
    body = await read_json(request)
    dataset_request = parse_submit(body, request, caller.channel)
    try:
        request_id, existing = await accept(
            ctx(request), dataset_request, wait_visible=True, roles=caller.roles
        )
    except RequestConflict:
        if ctx(request).settings.sunbird_config_conflict != "existing":
            raise
        # As Sunbird answers it: the job the request id names, whatever the config asked.
        read_model, _ = ctx(request).read_model, ctx(request).store
        held = read_model.get_record(caller.channel, dataset_request.request_id or "")
        if held is None:
            raise
        return job_status_response(request, held)
    if existing is not None and existing["status"] not in ("FAILED", "EXPIRED", "CANCELLED"):
        return job_status_response(request, existing)
    expiry_ms = ctx(request).settings.link_expiry_seconds * 1000
    answer = pending_response(dataset_request, request_id, expiry_ms)
    if existing is not None:
        answer["attempts"] = existing["attempts"]
    return answer


@api(INFO)
async def read(request: web.Request) -> dict[str, Any]:
    channel = channel_of(request)
    request_id = request.query.get("requestId", "")
    if not request_id:
        raise InvalidConfig("requestId is empty")
    tag = stored_tag(request.match_info["tag"], channel)
    read_model, _ = ctx(request).read_model, ctx(request).store
    record = read_model.get_record(channel, request_id)
    if record is None or record["tag"] != tag:
        message = "no job available with the given request_id and tag"
        if ctx(request).settings.sunbird_unknown_job == "200":
            raise FailedWithOk(message)
        raise NotFound(message)
    return job_status_response(request, record)


@api(LIST)
async def list_jobs(request: web.Request) -> dict[str, Any]:
    channel = channel_of(request)
    context = ctx(request)
    tag = stored_tag(request.match_info["tag"], channel)
    raw_limit = request.query.get("limit", str(context.settings.sunbird_list_limit))
    try:
        limit = int(raw_limit)
    except ValueError as exc:
        raise InvalidConfig(f"limit must be an integer; got {raw_limit[:20]!r}") from exc
    if not 1 <= limit <= MAX_LIST:
        raise InvalidConfig(f"limit must be 1..{MAX_LIST}")
    word = request.query.get("status")
    if word is not None and word.upper() not in STATES_OF:
        raise InvalidConfig(f"status must be one of {', '.join(sorted(STATES_OF))}")
    states = STATES_OF[word.upper()] if word is not None else None
    read_model, _ = context.read_model, context.store
    page = read_model.list_records(channel, tag=tag, status=states, limit=limit)
    jobs = [job_status_response(request, r) for r in page.records]
    return {"count": len(jobs), "jobs": jobs}


INTERVALS = ("LAST_DAY", "LAST_2_DAYS", "LAST_7_DAYS", "LAST_14_DAYS", "LAST_30_DAYS",
             "LAST_WEEK")  # fmt: skip


def interval(name: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """Sunbird's ``date_range`` names (``CommonUtil.getIntervalRange``): the last n days up to
    today, or last week Monday to this week's Monday."""
    if name == "LAST_WEEK":
        monday = today - dt.timedelta(days=today.weekday())
        return monday - dt.timedelta(days=7), monday
    if name not in INTERVALS:
        listed = ", ".join(INTERVALS)
        raise InvalidConfig(f"Provided dateRange {name[:40]} is not valid. Please use any one "
                            f"from this list - List({listed})")  # fmt: skip
    count = {"LAST_DAY": 1, "LAST_2_DAYS": 2, "LAST_7_DAYS": 7, "LAST_14_DAYS": 14,
             "LAST_30_DAYS": 30}[name]  # fmt: skip
    return today - dt.timedelta(days=count), today


def date_range(query: Any, settings: Settings, public: bool = False) -> tuple[dt.date, dt.date]:
    """``since`` or ``from`` .. ``to`` (default: yesterday .. today, UTC), by Sunbird's rules;
    the public route also takes ``date_range`` (a named interval) and ``date`` (one day), in
    that order of precedence, allows longer ranges and refuses old ones."""
    today = utc_now().date()
    if public and query.get("date_range"):
        first, last = interval(query["date_range"], today)
    elif public and query.get("date"):
        first = last = standard.parse_day(query["date"], "date")
    else:
        first_text = query.get("since") or query.get("from")
        first = (standard.parse_day(first_text, "from") if first_text
                 else today - dt.timedelta(days=1))  # fmt: skip
        last = standard.parse_day(query["to"], "to") if query.get("to") else today
    span = (last - first).days
    longest = settings.sunbird_public_max_days if public else settings.standard_max_days
    if last > today:
        raise InvalidConfig("'to' should be LESSER OR EQUAL TO today's date..")
    if span < 0:
        raise InvalidConfig("Date range should not be -ve. Please check your 'from' & 'to'")
    if span > longest:
        raise InvalidConfig(f"Date range should be < {longest} days")
    months = settings.sunbird_public_window_months
    if public and first < months_before(today, months):
        raise InvalidConfig(f"Date range cannot be older than {months} months")
    return first, last


def months_before(day: dt.date, months: int) -> dt.date:
    """``day`` minus whole months, the day clamped to the month's end (as Joda's minusMonths)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


def standard_type(request: web.Request, channel: str, public: bool) -> DatasetType:
    catalog = ctx(request).catalog
    dataset_id = request.match_info["datasetId"]
    offered = sorted(
        t.name
        for t in (catalog.types.values() if catalog is not None else ())
        if t.schedule is not None and t.public == public and t.admits(channel, None)
    )
    if catalog is None or dataset_id not in offered:
        raise InvalidConfig(
            f"Provided dataset is invalid. Please use any one from this list - {offered}"
        )
    return catalog.types[dataset_id]


def period_files(
    request: web.Request, dataset: DatasetType, channel: str, public: bool
) -> tuple[list[tuple[str, str]], int]:
    """``(day, link)`` of every file of ``dataset`` in the range, oldest day first, and the
    links' expiry (0 when there is none, as Sunbird answers)."""
    context = ctx(request)
    settings = context.settings
    read_model, store = context.read_model, context.store
    first, last = date_range(request.query, settings, public)
    if public and not settings.public_base_url:
        raise NotFound("public datasets are not served here (EXHAUST_PUBLIC_BASE_URL is not set)")
    files: list[tuple[str, str]] = []
    expiries: list[int] = []
    for day in standard.days(first, last):
        request_id = standard.standard_request_id(dataset.name, channel, day)
        record = read_model.get_record(channel, request_id)
        if (
            record is None
            or record["dataset"] != dataset.name  # only this type's files, whatever the id
            or record["status"] != "SUCCESS"
        ):
            continue
        for output in own_outputs(record):
            period = output["period"] or day.isoformat()
            if public and not output["key"].startswith(PUBLIC_PREFIX):
                continue  # the public route links nothing outside the public prefix
            if public:
                files.append((period, public_link(output["key"], settings)))
            else:
                url, expires = store.link(output["key"], settings.link_expiry_seconds)
                files.append((period, url))
                expiries.append(expires)
    return files, min(expiries) if expiries else 0


def grouped(files: list[tuple[str, str]]) -> dict[str, list[str]]:
    by_day: dict[str, list[str]] = {}
    for day, url in files:
        by_day.setdefault(day, []).append(url)
    return by_day


@api(TELEMETRY, client_key=None)
async def dataset_get(request: web.Request) -> dict[str, Any]:
    channel = channel_of(request)
    dataset = standard_type(request, channel, public=False)
    files, expires_at = period_files(request, dataset, channel, public=False)
    return {
        "files": [url for _, url in files],
        "periodWiseFiles": grouped(files),
        "expiresAt": expires_at,
    }


@api(TELEMETRY, client_key=None)
async def public_dataset_get(request: web.Request) -> dict[str, Any]:
    # Unauthenticated: the channel header alone, else the anonymous public channel.
    channel = channel_of(request, public=True, profile="sunbird-public")
    dataset = standard_type(request, channel, public=True)
    files, _ = period_files(request, dataset, channel, public=True)
    if not files:
        return {"message": NO_PUBLIC_FILES}
    return {"files": [url for _, url in files], "periodWiseFiles": grouped(files)}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/dataset/v1/request/submit", submit)
    app.router.add_get("/dataset/v1/request/read/{tag}", read)
    app.router.add_get("/dataset/v1/request/list/{tag}", list_jobs)
    app.router.add_get("/dataset/get/{datasetId}", dataset_get)
    app.router.add_get("/public/dataset/get/{datasetId}", public_dataset_get)


SUNBIRD_PARAMS = obj(["resmsgid", "status"], resmsgid=STRING, msgid=nullable(STRING),
                     status={"enum": ["successful", "failed"]}, err=STRING, errmsg=STRING,
                     client_key={"type": "null"})  # fmt: skip

SUNBIRD_JOB = obj(
    ["requestId", "tag", "dataset", "requestedBy", "requestedChannel", "status", "lastUpdated",
     "datasetConfig", "downloadUrls", "expiresAt", "jobStats", "attempts"],
    requestId=STRING, tag=STRING, dataset=STRING, requestedBy=STRING, requestedChannel=STRING,
    status={"enum": sorted(set(WORDS.values()))}, lastUpdated=INTEGER,
    datasetConfig=ANY_OBJECT, downloadUrls={"type": "array", "items": STRING},
    expiresAt=INTEGER, attempts=INTEGER, statusMessage=STRING,
    jobStats=obj(["dtJobSubmitted"], dtJobSubmitted=INTEGER, dtJobCompleted=nullable(INTEGER),
                 executionTime=nullable(INTEGER)),
)  # fmt: skip


def sunbird_envelope(result: Schema) -> Schema:
    return obj(["id", "ver", "ts", "params", "responseCode", "result"], id=STRING, ver=STRING,
               ts=STRING, params=SUNBIRD_PARAMS, responseCode=STRING,
               result=nullable(result))  # fmt: skip


STANDARD_FILES = obj(
    files={"type": "array", "items": STRING},
    periodWiseFiles={"type": "object", "additionalProperties": {"type": "array", "items": STRING}},
    expiresAt=INTEGER, message=STRING,
)  # fmt: skip


def standard_files(summary: str, dataset: str, public: bool = False) -> Schema:
    """Sunbird's two listings of standard datasets: the same answer; the public one also takes
    ``date`` and ``date_range``."""
    envelope = sunbird_envelope(STANDARD_FILES)
    day = {"type": "string", "format": "date"}
    extra = (
        [
            query("date", day, "One day (instead of from and to)"),
            query(
                "date_range",
                {"enum": list(INTERVALS)},
                "A named range up to today (before date, from and to)",
            ),
        ]
        if public
        else []
    )
    return operation(summary, {"200": answer(envelope), **errors(envelope)}, CHANNEL,
                     path("datasetId", dataset), query("from", day, "First day"),
                     query("to", day, "Last day"),
                     query("since", day, "First day (instead of from)"), *extra,
                     tag="sunbird")  # fmt: skip


def openapi_paths(catalog: Catalog) -> dict[str, Schema]:
    """The OpenAPI paths of this profile's routes."""
    paths: dict[str, Schema] = {
        "/dataset/v1/request/submit": {"post": operation(
            "Submit an on-demand exhaust (Sunbird)",
            {"200": answer(sunbird_envelope(SUNBIRD_JOB)),
             **errors(sunbird_envelope(SUNBIRD_JOB))}, CHANNEL,
            header("X-Authenticated-Userid", "The requester", required=False),
            body=obj(["request"], id=STRING, ver=STRING, ts=STRING,
                     params=obj(msgid=STRING), request=obj(
                         ["tag", "dataset", "datasetConfig"], tag=STRING, dataset=STRING,
                         requestedBy=STRING, encryptionKey=STRING, datasetConfig=ANY_OBJECT)),
            tag="sunbird")},
        "/dataset/v1/request/read/{tag}": {"get": operation(
            "One request (Sunbird)", {"200": answer(sunbird_envelope(SUNBIRD_JOB)),
                                      **errors(sunbird_envelope(SUNBIRD_JOB))},
            CHANNEL, path("tag", "The request's tag"),
            query("requestId", STRING, "The request id", required=True), tag="sunbird")},
        "/dataset/v1/request/list/{tag}": {"get": operation(
            "A tag's requests, newest first (Sunbird)",
            {"200": answer(sunbird_envelope(obj(["count", "jobs"], count=INTEGER, jobs={
                "type": "array", "items": SUNBIRD_JOB}))),
             **errors(sunbird_envelope(ANY_OBJECT))},
            CHANNEL, path("tag", "The tag"),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "How many"),
            query("status", {"enum": sorted(STATES_OF)}, "Only this status"),
            tag="sunbird")},
        "/dataset/get/{datasetId}": {"get": standard_files(
            "A standard dataset's files by day (Sunbird)",
            "summary-rollup or summary-channel-exhaust")},
        "/public/dataset/get/{datasetId}": {"get": standard_files(
            "A public dataset's files by day, unauthenticated (Sunbird)",
            "A public standard dataset", public=True)},
    }  # fmt: skip
    return paths


PROFILE = Profile("sunbird", add_routes, openapi_paths)
