"""The load generator's parts: the rig (stack, watchlist, deployment, service processes), the crop injector,
the probes (latency, lag, throughput, CPU and memory) and the report.
``load-tests/loadgen.py`` drives them."""
