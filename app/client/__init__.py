"""Python clients of Exhaust.

* :mod:`app.client.jobs` — :class:`JobsClient` and :class:`AsyncJobsClient` (HTTP): submit,
  read, list, wait for, cancel, retry and download jobs.
* :mod:`app.client.fill` — :class:`ExhaustClient` (HTTP): fill managed datasets from rows, CSV
  files of any size or typed files, and read them back.
* :mod:`app.client.status_stream` — :func:`job_changes` (Kafka): typed job status changes
  from a chosen point of ``exhaust.jobs``, for downstream services.
"""

from app.client.fill import CsvChunks, ExhaustClient, FillSummary, fill_body, sniff_columns
from app.client.jobs import AsyncJobsClient, Job, JobsClient
from app.client.status_stream import JobChange, job_changes

__all__ = [
    "AsyncJobsClient",
    "CsvChunks",
    "ExhaustClient",
    "FillSummary",
    "Job",
    "JobChange",
    "JobsClient",
    "fill_body",
    "job_changes",
    "sniff_columns",
]
