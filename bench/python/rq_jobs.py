"""bench/python/rq_jobs.py - the RQ side of bench/tw_python.py: one
no-op job function, imported by the benchmark's ``rq worker``s."""


def noop():
    return None
