"""`lfr ingest`'s composition root on the real stack: readiness, shard, metrics, `lfr cameras status`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from typer.testing import CliRunner

from lfr.core.observability import HealthServer
from lfr.core.service import ServiceContext
from lfr.ingest import metrics as m
from lfr.ingest.service import main

pytestmark = [pytest.mark.integration]


async def test_main_gets_ready_analyses_and_reports_status(
    settings_for, models_dir: Path, street_video: Path, live_deployment, tmp_path: Path, monkeypatch
) -> None:
    cameras = tmp_path / "cameras.yaml"
    base = settings_for(models={"dir": models_dir})
    deployment_id = await live_deployment(base)
    cameras.write_text(
        yaml.safe_dump(
            [
                {
                    "camera_id": "main-street",
                    "deployment_id": deployment_id,
                    "url": str(street_video),
                    "loop": True,
                },
                {"camera_id": "main-dead", "deployment_id": deployment_id, "url": "rtsp://127.0.0.1:9/none"},
            ]
        )
    )
    settings = settings_for(
        models={"dir": models_dir},
        ingest={"cameras_file": cameras, "analyse_fps": 2},
        redis={"key_prefix": base.redis.key_prefix, "url": base.redis_url},
        data_dir=tmp_path / "data",
    )
    ctx = ServiceContext(settings, "ingest", HealthServer(settings, "ingest"))
    task = asyncio.create_task(main(ctx))
    try:
        async with asyncio.timeout(30):
            while not all((ready := await ctx.health.readiness()).values()) or len(ready) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        assert set(ready) == {"detector", "redis", "broker"}
        analysed = m.FRAMES_ANALYSED.labels("main-street")
        async with asyncio.timeout(30):
            while analysed._value.get() < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        await asyncio.sleep(2.5)  # one status report interval

        env = {
            "LFR_DATA_DIR": str(tmp_path / "data"),
            "LFR_REDIS__URL": settings.redis_url,
            "LFR_REDIS__KEY_PREFIX": settings.redis.key_prefix,
            "LFR_INGEST__CAMERAS_FILE": str(cameras),
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        from lfr.core.config import get_settings
        from lfr.ingest.cli import cameras_app

        get_settings.cache_clear()
        result = await asyncio.to_thread(CliRunner().invoke, cameras_app, ["status", "--json"])
        get_settings.cache_clear()
        doc = json.loads(result.output)
        assert result.exit_code == 1, "a dead camera makes the status command fail"
        assert doc["healthy"] is False
        assert doc["cameras"]["main-street"]["connected"] is True
        assert doc["cameras"]["main-street"]["analysed_fps"] > 0
        assert doc["cameras"]["main-dead"]["connected"] is False
        assert doc["cameras"]["main-dead"]["last_error"]

        text = generate_latest().decode()
        assert 'lfr_ingest_frames_in_total{camera="main-street"}' in text
        assert 'lfr_ingest_camera_connected{camera="main-dead"} 0.0' in text
    finally:
        ctx.request_stop()
        async with asyncio.timeout(20):
            await task
