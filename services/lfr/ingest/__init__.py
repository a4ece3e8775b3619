"""Ingest: camera streams to encrypted best-shot face crops on lfr.crops.v1 (see README.md here).

Entry points: :func:`lfr.ingest.service.main` (``lfr ingest``), :class:`lfr.ingest.pipeline.IngestPipeline`
(synchronous core for tests and the benchmark), :mod:`lfr.ingest.cli` (``lfr cameras``,
``lfr bench ingest``) and :func:`lfr.ingest.demo_scene.build_demo_scene` (the ``make demo`` scene).
"""
