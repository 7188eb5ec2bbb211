"""Presigned links: the fast signer gives botocore's own URL, and reuses it only briefly."""

from __future__ import annotations

from aiobotocore.session import get_session

from app.engine.storage import LinkSigner
from app.settings import Settings

KEY = "acme/demo-export/a:b@c/1/data.csv"


async def test_the_direct_signer_builds_the_url_the_s3_client_would() -> None:
    settings = Settings()
    signer = LinkSigner(settings, settings.s3_bucket)
    async with get_session().create_client("s3", **settings.s3_client_kwargs()) as client:
        for _ in range(3):  # both must fall in the same second (X-Amz-Date)
            ours = signer.sign(KEY, 900)
            theirs = await client.generate_presigned_url(
                "get_object", Params={"Bucket": settings.s3_bucket, "Key": KEY}, ExpiresIn=900
            )
            if ours == theirs:
                break
        assert ours == theirs


def test_a_link_is_reused_within_the_reuse_window_and_its_expiry_is_exact() -> None:
    settings = Settings(link_reuse_seconds=60, link_cache_size=2)
    signer = LinkSigner(settings, "b")
    url, expires = signer.get(KEY, 3600, now_ms=1_000_000)
    assert expires == 1_000_000 + 3_600_000
    assert signer.get(KEY, 3600, now_ms=1_059_999) == (url, expires)
    _, later = signer.get(KEY, 3600, now_ms=1_060_000)
    assert later == 1_060_000 + 3_600_000  # re-signed: never handed out with < expiry - 60 s
    signer.get("k2", 3600, now_ms=1_060_000)
    signer.get("k3", 3600, now_ms=1_060_000)
    assert len(signer._cache) == 2  # bounded
