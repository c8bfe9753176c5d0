"""bench/python/bench_tasks.py - the Python handlers of bench/tw_python.py.

Run by ``python3 -m taskwheel.handler bench_tasks`` children of the
benchmark's worker (--proc).
"""

from taskwheel import task


@task("py.noop")
def noop(*args, **kwargs):
    """Nothing, whatever the arguments: the scheduler's own cost."""
    return None


@task("py.echo")
def echo(*args):
    """The positional arguments, back."""
    return list(args)
