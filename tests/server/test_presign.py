"""The lean presigner signs exactly as botocore does: the same path, the same query and the
same signature, for every endpoint shape, key, method and credential kind the store meets.

An enforcing S3 accepting the URLs is ``test_s3_signatures`` (SeaweedFS checks SigV4).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from pipecat_roark.server.blobs.presign import learn

KEYS = [
    "recordings/0b9d/chunks/000001.pcm",
    "audio/with space/and+plus=equals.wav",
    "prefix/ünïcödé/日本語~tilde(parens)!*'.pcm",
    "a//double/slash",
]
ENDPOINTS = [
    ("http://127.0.0.1:8333", "us-east-1"),
    ("https://storage.example.com", "auto"),
    ("https://storage.example.com:9443", "eu-central-1"),
    (None, "eu-west-2"),
]


def _parts(url: str) -> tuple[str, str, dict[str, list[str]]]:
    split = urlsplit(url)
    return f"{split.scheme}://{split.netloc}", split.path, parse_qs(split.query)


@pytest.mark.parametrize(("endpoint", "region"), ENDPOINTS)
@pytest.mark.parametrize("token", [None, "session/token+with=specials"])
async def test_urls_match_botocores_for_the_same_moment(
    endpoint: str | None, region: str, token: str | None
) -> None:
    config = AioConfig(signature_version="s3v4", s3={"addressing_style": "path"})
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        config=config,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
    ) as client:
        credentials = client._request_signer._credentials  # the client's own, to compare

        async def frozen() -> Any:
            return await credentials.get_frozen_credentials()

        probe = await client.generate_presigned_url(
            "put_object",
            Params={"Bucket": "bucket-1", "Key": "probe", "ContentType": "audio/pcm"},
            ExpiresIn=60,
        )
        signer = learn(probe, "bucket-1", frozen)
        assert signer is not None
        for key in KEYS:
            for method, operation, params in (
                ("PUT", "put_object", {"ContentType": "audio/pcm"}),
                ("GET", "get_object", {}),
            ):
                theirs = await client.generate_presigned_url(
                    operation, Params={"Bucket": "bucket-1", "Key": key, **params}, ExpiresIn=900
                )
                stamp = parse_qs(urlsplit(theirs).query)["X-Amz-Date"][0]
                moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
                ours = await signer.presign(
                    method,
                    "bucket-1",
                    key,
                    900,
                    content_type=params.get("ContentType"),
                    now=moment,
                )
                assert _parts(ours) == _parts(theirs), (method, key)


def test_a_url_of_another_shape_is_left_to_botocore() -> None:
    async def frozen() -> Any:
        raise AssertionError("not signing")

    virtual_host = (
        "https://bucket-1.s3.amazonaws.com/probe?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKID%2F20261207%2Fus-east-1%2Fs3%2Faws4_request"
    )
    sigv2 = "https://s3.amazonaws.com/bucket-1/probe?AWSAccessKeyId=AKID&Signature=x&Expires=1"
    assert learn(virtual_host, "bucket-1", frozen) is None
    assert learn(sigv2, "bucket-1", frozen) is None
