"""shopcrawl's own Scrapy signals."""

# Sent once a run's final record is in the store, with ``run`` (a RunRecord), by the worker that
# closed the run. Reports and alerts listen to it.
run_finished = object()
