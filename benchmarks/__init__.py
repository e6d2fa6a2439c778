"""Benchmarks of shopcrawl against the sandbox: ``python -m benchmarks`` runs eight scenarios (API calls
per item, wall time with network latency, CPU-bound throughput, memory, workers, faults, reports, the
fleet's shops per hour) and
writes ``benchmarks/RESULTS.md`` with ``results.json`` beside it.

    python -m benchmarks [--quick] [--only 1,3] [--reps 3] [--out benchmarks/RESULTS.md] [--mongo-uri URI]
                         [--profile DIR]

- ``procs``: child processes measured one by one (``wait4``: wall, CPU, peak RSS);
- ``services``: the sandbox, FerretDB (or ``--mongo-uri``) and redis-server;
- ``harness``: a crawl against the sandbox into a store, checked (exit 0, every item stored);
- ``scenarios/``: one module per scenario; ``results``: RESULTS.md and results.json;
- ``baselines/``: the seed article's client and a plain Scrapy spider, what shopcrawl is compared with.

Every headline figure is a ratio measured within one run. The older single-purpose scripts
(``full_crawl.py``, ``mongo_store.py``, ``qps_window.py``, ``stock_scrapy_redis_loss.py``,
``sandbox_throughput.py``) stay beside it.
"""
