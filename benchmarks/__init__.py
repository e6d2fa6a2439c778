"""Benchmarks of shopcrawl against the sandbox: ``python -m benchmarks`` runs seven scenarios (API calls
per item, wall time with network latency, CPU-bound throughput, memory, workers, faults, reports) and
writes ``benchmarks/RESULTS.md`` with ``results.json`` beside it.

    python -m benchmarks [--quick] [--only 1,3] [--reps 3] [--out benchmarks/RESULTS.md] [--mongo-uri URI]

Every crawl is a subprocess measured on its own (wall, CPU, peak RSS); API calls come from the
sandbox's counters; every headline figure is a ratio measured within one run. The older single-purpose
scripts (``qps_window.py``, ``stock_scrapy_redis_loss.py``, ``sandbox_throughput.py``) stay beside it.
"""
