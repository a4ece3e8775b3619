"""Benchmarks: each prints its figures as one JSON object (``lfr bench ...``, ``make bench``).

Why one package: a benchmark drives a whole service (and often the model build and the shared face data),
so it sits above the service packages rather than inside them; no service imports it.

* :mod:`lfr.bench.models`: detection and embedding latency, detection recall (``lfr bench models``);
* :mod:`lfr.bench.ingest`: cameras per core (``lfr bench ingest``);
* :mod:`lfr.bench.pipeline`: embedder end-to-end efficiency (``lfr bench pipeline``);
* :mod:`lfr.bench.search`: watchlist search latency and gallery index options (``lfr bench search|gallery``);
* :mod:`lfr.bench.redact`: redaction frames per second (``lfr bench redact``).
"""
