"""Crop keys expire from the real Redis, and with them every crop they protected."""

from __future__ import annotations

import asyncio

import pytest

from lfr.core.crypto import CropKeyring, KeyExpired, crop_aad
from lfr.core.redis_client import make_keystore_redis

pytestmark = pytest.mark.integration


async def test_crops_become_unreadable_after_key_ttl(settings_for) -> None:
    settings = settings_for(crypto={"key_rotation_s": 1, "key_ttl_s": 2})
    redis = make_keystore_redis(settings)  # crop keys live only in the memory-only key store
    try:
        writer, reader = CropKeyring(settings, redis), CropKeyring(settings, redis)
        aad = crop_aad("c1", "cam", "dep")
        blob = await writer.encrypt(b"chip", aad)
        assert await reader.decrypt(blob, aad) == b"chip"
        await asyncio.sleep(1.2)
        second = await writer.encrypt(b"chip2", aad)
        assert second.key_id != blob.key_id, "keys rotate"
        await asyncio.sleep(1.5)
        with pytest.raises(KeyExpired):
            await reader.decrypt(blob, aad)  # the reader's cache never outlives the Redis TTL
        with pytest.raises(KeyExpired):
            await CropKeyring(settings, redis).decrypt(blob, aad)
    finally:
        await redis.aclose()
