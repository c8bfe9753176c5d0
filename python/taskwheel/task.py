"""Registering Python functions as taskwheel handlers.

``@task`` puts a function in this process's registry under a handler
name: the name given, or the function's qualified name::

    from taskwheel import task

    @task("resize")
    def resize(path, width=100):
        ...

    @task                       # handler name "add"
    def add(x, y):
        return x + y

A worker runs the registered functions in child processes started with
``taskwheel-worker --proc 'python3 -m taskwheel.handler MODULE...'`` (see
:mod:`taskwheel.handler`): each MODULE is imported, and every function it
registers becomes a handler the worker offers.

A function that has a parameter named ``ctx`` gets a
:class:`taskwheel.handler.Context` there: the task's id and attempt, its
channel to the submitter (``ctx.send``, ``ctx.request``) and, in station
iterations, ``ctx.set_next``, ``ctx.stop`` and ``ctx.emit``. Station
handlers that read n2s messages (``ctx.receive``) are registered with
``n2s=True``.

The decorated object stays callable as the plain function, and can also
submit itself through the default client (``$TASKWHEEL_BROKER``), the way
Celery tasks do::

    h = add.delay(2, 3)                     # Client.submit("add", 2, 3)
    h = add.apply_async((2, 3), timeout=5)  # Client.send_task(...)
    print(h.result(timeout=10))
"""

from __future__ import annotations

import atexit
import functools
import inspect
import threading
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

from ._calls import check_name

_registry: Dict[str, "Task"] = {}
_default_client: Any = None
_default_lock = threading.Lock()


class Task:
    """A registered handler: ``name``, the function ``fn``, whether it
    takes a ``ctx`` and whether its stations read n2s messages.

    ``ctx`` may be any parameter: ``def f(ctx, x)`` and ``def f(x, *,
    ctx)`` both work, the arguments filling the other parameters."""

    def __init__(self, fn: Callable[..., Any], name: str, n2s: bool = False):
        self.fn = fn
        self.name = check_name("handler name", name)
        self.n2s = n2s
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        p = params.get("ctx")
        self.wants_ctx = p is not None and p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY)
        #: where ctx goes among the positional parameters (None: keyword)
        self.ctx_index: Optional[int] = None
        if p is not None and p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD:
            self.ctx_index = list(params).index("ctx")
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return "<taskwheel.Task %r %s>" % (self.name, self.fn.__qualname__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function here, in this process."""
        return self.fn(*args, **kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Submit ``name(*args, **kwargs)`` through the default client;
        returns its :class:`taskwheel.TaskHandle` (Celery's ``delay``)."""
        return default_client().send_task(self.name, args, kwargs)

    submit = delay

    def apply_async(self, args: Sequence[Any] = (),
                    kwargs: Optional[Dict[str, Any]] = None,
                    **options: Any) -> Any:
        """Submit with options (``timeout``, ``retries``, ``priority``,
        ``pool``, ``group``, ``delay``, ``key``): Celery's
        ``apply_async``."""
        return default_client().send_task(self.name, args, kwargs,
                                          **options)

    def map(self, iterable: Iterable[Any], **options: Any) -> Any:
        """``default_client().map(name, iterable, **options)``."""
        return default_client().map(self.name, iterable, **options)


def task(name: Any = None, *, n2s: bool = False) -> Any:
    """Register a function as a handler. Use as ``@task``,
    ``@task("name")`` or ``@task(name="name", n2s=True)``. Registering two
    functions under one name is an error (ValueError)."""
    def register(fn: Callable[..., Any], hname: Optional[str]) -> Task:
        t = Task(fn, hname or fn.__qualname__, n2s)
        old = _registry.get(t.name)
        if old is not None and old.fn is not fn:
            raise ValueError("handler %r is already registered by %s.%s"
                             % (t.name, old.fn.__module__,
                                old.fn.__qualname__))
        _registry[t.name] = t
        return t

    if callable(name):
        return register(name, None)

    def decorator(fn: Callable[..., Any]) -> Task:
        return register(fn, name)
    return decorator


def registry() -> Dict[str, Task]:
    """The handlers registered in this process, by name (a copy)."""
    return dict(_registry)


def default_client() -> Any:
    """The client ``Task.delay`` uses: made on first use from
    $TASKWHEEL_BROKER (and the CURVE variables), unless one was set with
    :func:`set_default_client`."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            from .client import Client
            _default_client = Client()
            atexit.register(_close_default)
        return _default_client


def _close_default() -> None:
    # What the program submitted and did not wait for still leaves.
    c = _default_client
    if c is not None:
        c.close()


def set_default_client(client: Any) -> None:
    """Use ``client`` for ``Task.delay`` and friends."""
    global _default_client
    with _default_lock:
        _default_client = client
