"""Which failures are the user's to fix, and the one line that tells them how.

`flows.cli.main` prints `error: <line>` and exits 2 for these; any other exception is a bug and
keeps its traceback. The table `RULES` is the one list: (predicate, message builder), first match
wins. A flow re-raises its task's exception, but Prefect sometimes wraps it
(`RuntimeError("Failed to reach API ...") from ConnectError`, a `CrashedRun` that carries only a
message), so the chain is walked through `__cause__`. `__context__` is not followed: an error
raised while handling another one is its own failure (often a bug in the handler).

Prefect logs a failed task or flow with its traceback (`logger.exception`); while a command
runs, `user_tracebacks_dropped` keeps such records' message and drops the traceback when the
failure is the user's to fix, so the terminal shows no traceback for it anywhere.

Nothing here imports torch, httpx or prefect: an exception of theirs can only exist once they are
imported, so they are looked up in `sys.modules`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from synth.errors import DatasynthError
from synth.faults import InjectedOutOfMemoryError

__all__ = ["RULES", "user_error_line", "user_tracebacks_dropped"]

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_FORBIDDEN = {errno.EROFS, errno.EACCES, errno.EPERM}
_RESUME = "then rerun the same command: finished work is kept"
# What Prefect writes when it can only give a message (a crashed run, a failed health check).
_API_PHRASES = ("Failed to reach API", "ConnectError", "Request to ")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _path(exc: OSError) -> str | None:
    name = exc.filename if exc.filename is not None else exc.filename2
    return os.fsdecode(name) if name is not None else None


def _frames(tb: TracebackType | None) -> Iterator[str]:
    while tb is not None:
        yield tb.tb_frame.f_code.co_filename.replace("\\", "/")
        tb = tb.tb_next


# ------------------------------------------------------------------------- full disk / no rights


def _is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


def _disk_full(exc: BaseException) -> str:
    assert isinstance(exc, OSError)
    path = _path(exc)
    where = f"could not write {path!r}" if path else "could not write a file"
    return (
        f"the disk is full: {where} ({exc.strerror}): free space on that disk "
        f"(or use another output folder); {_RESUME}"
    )


def _is_forbidden(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _FORBIDDEN


def _forbidden(exc: BaseException) -> str:
    assert isinstance(exc, OSError)
    path = _path(exc)
    if path is None:
        return f"no permission to use a file ({exc.strerror}): check the folders you gave"
    folder = str(Path(path).parent)
    if exc.errno == errno.EROFS:
        fix = f"the folder {folder!r} is on a read-only file system: use another folder"
    else:
        fix = f"make the folder {folder!r} writable (readable, if it is an input) or use another"
    return f"no permission to use {path!r} ({exc.strerror}): {fix}; {_RESUME}"


# ------------------------------------------------------------------------------ Prefect API lost


def _api_url() -> str | None:
    url = os.environ.get("PREFECT_API_URL")
    if not url and "prefect.settings" in sys.modules:
        url = sys.modules["prefect.settings"].PREFECT_API_URL.value()
    return url or None


def _request_url(exc: BaseException) -> str | None:
    try:
        return str(exc.request.url)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError when no request is set
        return None


def _is_api_lost(exc: BaseException) -> bool:
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.TransportError):
        # Only Prefect's own calls: a model download over httpx is not the API
        api, url = _api_url(), _request_url(exc)
        if api and url:
            return url.startswith(api.rstrip("/"))
        return any("/prefect/client/" in f for f in _frames(exc.__traceback__))
    prefect_wrapped = type(exc).__module__.startswith("prefect") or (
        isinstance(exc, RuntimeError) and str(exc).startswith("Failed to reach API")
    )
    return prefect_wrapped and any(p in str(exc) for p in _API_PHRASES)


def _api_lost(exc: BaseException) -> str:
    url = _api_url()
    detail = _one_line(f"{type(exc).__name__}: {exc}")[:200]
    if url is None:
        return f"lost the temporary Prefect server this command started ({detail}): {_RESUME}"
    return (
        f"lost the Prefect API at {url} ({detail}): start it with `datasynth server` and keep it "
        f"running, or unset PREFECT_API_URL so each command starts its own; {_RESUME}"
    )


# ---------------------------------------------------------------------------- GPU out of memory


def _is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return isinstance(exc, InjectedOutOfMemoryError) or (
        torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)
    )


def _out_of_memory(exc: BaseException) -> str:
    first = _one_line(str(exc).split(".")[0])[:160]
    if any("/synth/training/" in f for f in _frames(exc.__traceback__)):
        return f"the GPU ran out of memory while training ({first}): lower `train.batch_size`"
    # A batch halves itself on out-of-memory: reaching here means one image did not fit
    return (
        f"the GPU ran out of memory generating a single image ({first}): lower `width`/`height`,"
        f' or set `dtype = "fp16"`; {_RESUME}'
    )


# --------------------------------------------------------------------------------------- the table

Rule = tuple[Callable[[BaseException], bool], Callable[[BaseException], str]]

RULES: tuple[Rule, ...] = (
    (lambda exc: isinstance(exc, DatasynthError), str),  # bad input, a held lock, no model
    (_is_disk_full, _disk_full),
    (_is_forbidden, _forbidden),
    (_is_api_lost, _api_lost),
    (_is_out_of_memory, _out_of_memory),
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__


def user_error_line(exc: BaseException) -> str | None:
    """The `error:` line for a failure the user can fix, or None for a bug (keep the traceback).

    An exception group (several tasks failed at once) is the user's to fix only when every
    member is; it then reports the first.
    """
    for link in _chain(exc):
        if isinstance(link, BaseExceptionGroup):
            lines = [user_error_line(member) for member in link.exceptions]
            return lines[0] if all(lines) else None
        for matches, message in RULES:
            if matches(link):
                return message(link)
    return None


@contextlib.contextmanager
def user_tracebacks_dropped() -> Iterator[None]:
    """Log records (Prefect's included) of a failure the user can fix keep only their message.

    A record factory, not a handler: Prefect builds its console handler when it is imported,
    which the CLI does lazily, inside each command.
    """
    make = logging.getLogRecordFactory()

    def factory(name, level, fn, lno, msg, args, exc_info, func=None, sinfo=None, **kwargs):
        if exc_info and exc_info[1] is not None and user_error_line(exc_info[1]) is not None:
            exc_info = None
        return make(name, level, fn, lno, msg, args, exc_info, func, sinfo, **kwargs)

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(make)
