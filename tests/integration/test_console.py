"""The job console in a real headless Chromium (Debian's, driven by Playwright) against a real
worker: a channel's jobs live, filtered, opened, cancelled, retried and downloaded, and
nothing of another channel's."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from app.client.jobs import AsyncJobsClient
from app.settings import Settings
from tests.integration.harness import Worker, start_worker

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("EXHAUST_TEST_CHROMIUM", "/usr/bin/chromium")
# Chromium on a closed network: no background connections, no first-run, a throwaway profile.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SCREENSHOT = os.environ.get("EXHAUST_CONSOLE_SCREENSHOT")  # docs/console.png is made this way


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is needed (make test installs Debian's chromium)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        await launched.close()


def row(page: Page, request_id: str) -> Locator:
    return page.locator(f'tr[data-request-id="{request_id}"]')


async def test_a_channel_follows_filters_opens_cancels_retries_and_downloads_its_jobs(
    settings_factory: Callable[..., Settings], workers: list[Worker], browser: Browser,
    tmp_path: Path,
) -> None:  # fmt: skip
    worker = await start_worker(workers, settings_factory(), "w1")
    async with AsyncJobsClient(worker.url, "acme") as acme, \
            AsyncJobsClient(worker.url, "rival") as rival:  # fmt: skip
        done = await acme.submit("console-a", "demo-export", config={"rows": 300},
                                 request_id="shared-id")  # fmt: skip
        # The same id in another channel is another job, and never shown to acme.
        await rival.submit("rival-tag", "demo-export", config={"rows": 7}, request_id="shared-id")
        finished = await acme.wait(done, timeout=90, poll=0.2)
        assert finished.status == "SUCCESS"

        page = await browser.new_page(
            accept_downloads=True, viewport={"width": 1440, "height": 720}
        )
        await page.goto(f"{worker.url}/console")
        await page.get_by_label("Channel").fill("acme")
        await page.get_by_role("button", name="Open").click()
        await expect(page.get_by_test_id("channel")).to_have_text("acme")
        await expect(page.get_by_test_id("sign-in")).to_be_hidden()
        shared = row(page, "shared-id")
        await expect(shared.get_by_test_id("status")).to_have_text("SUCCESS")
        await expect(shared).to_contain_text("console-a")
        await expect(page.locator("tbody tr")).to_have_count(1)  # not the rival's job

        # Live: a job submitted now appears and moves on without a reload.
        slow = await acme.submit("console-b", "demo-export", config={"rows": 20_000_000})
        status = row(page, slow).get_by_test_id("status")
        await expect(status).to_have_text("PROCESSING", timeout=60_000)
        await page.get_by_label("Tag").fill("console-b")
        await expect(page.locator("tbody tr")).to_have_count(1)

        # Open it, cancel it, retry it: a second attempt runs.
        await row(page, slow).get_by_test_id("open").click()
        detail = page.get_by_test_id("detail")
        await expect(detail.locator('[data-field="status"]')).to_have_text("PROCESSING")
        await page.get_by_test_id("cancel").click()
        await expect(status).to_have_text("CANCELLED", timeout=60_000)
        await page.get_by_test_id("retry").click()
        await expect(row(page, slow)).to_contain_text("2/3", timeout=60_000)
        await expect(status).to_have_text("PROCESSING", timeout=60_000)
        await page.get_by_test_id("cancel").click()
        await expect(status).to_have_text("CANCELLED", timeout=60_000)

        # Every job again; open the finished one and download a file, checked by its digest.
        await page.get_by_label("Tag").fill("")
        await expect(page.locator("tbody tr")).to_have_count(2)
        await shared.get_by_test_id("open").click()
        files = page.get_by_test_id("file")
        await expect(files).to_have_count(len(finished.outputs))
        if SCREENSHOT:
            await page.screenshot(path=SCREENSHOT, full_page=True)
        data = next(o for o in finished.outputs if o.name.endswith(".csv"))
        async with page.expect_download() as download_info:
            await files.filter(has_text=data.name).click()
        download = await download_info.value
        saved = tmp_path / data.name
        await download.save_as(saved)
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == data.sha256

        # Another channel sees its own job under the same id, and only that.
        await page.get_by_test_id("sign-out").click()
        await page.get_by_label("Channel").fill("rival")
        await page.get_by_role("button", name="Open").click()
        await expect(page.get_by_test_id("detail")).to_be_hidden()  # acme's job is not left open
        await expect(row(page, "shared-id")).to_contain_text("rival-tag")
        await expect(page.locator("tbody tr")).to_have_count(1)


async def test_the_page_allows_no_script_but_its_own(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    worker = await start_worker(workers, settings_factory(), "w1")
    async with httpx.AsyncClient() as http:
        page = await http.get(f"{worker.url}/console")
        script = await http.get(f"{worker.url}/console/console.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text  # values go in as text only
