"""bench/python/celery_app.py - the Celery side of bench/tw_python.py.

A Celery app on the Redis server named by $TW_BENCH_REDIS (broker and
result backend), with one no-op task. Started by the benchmark as
``python3 -m celery -A celery_app worker ...``.
"""

import os

from celery import Celery

url = os.environ.get("TW_BENCH_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("celery_app", broker=url, backend=url)
app.conf.update(task_serializer="json", result_serializer="json",
                accept_content=["json"], worker_prefetch_multiplier=64,
                broker_connection_retry_on_startup=True)


@app.task(name="noop")
def noop():
    return None
