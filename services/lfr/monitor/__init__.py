"""The operations view: what `lfr status` and ``GET /api/v1/ops/status`` report, and the monitor stage.

``status`` gathers lag, group members, throughput, camera health, key TTLs and the stack's parts on demand;
``stage`` (``lfr monitor``) keeps windowed per-camera and per-deployment figures in faust tables and raises
operations events. They meet in Redis (``records``), so the status needs no running monitor to answer, and
says so when the monitor's figures are missing.
"""
