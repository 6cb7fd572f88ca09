"""The CLI's one error path: which failures become one `error:` line, and what the line says.

The exceptions are built here as the libraries raise them (no disk is filled, no server killed:
tests/reliability/test_cli_failures.py does that, in the heavy suite).
"""

from __future__ import annotations

import errno
import logging

import httpx
import pytest
import torch
from prefect.exceptions import CrashedRun

import flows.cli
from flows.cli.errors import user_error_line, user_tracebacks_dropped
from synth.errors import ConfigError, DatasetLockedError
from synth.faults import InjectedOutOfMemoryError

API = "http://127.0.0.1:4999/api"


@pytest.fixture(autouse=True)
def _api_url(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", API)


def _connect_error(url: str) -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused", request=httpx.Request("GET", url))


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """`exc` as it arrives at `main`: raised (with a traceback), chained `from cause`."""
    try:
        raise exc from cause
    except BaseException as caught:  # noqa: BLE001 - handed back to the test
        return caught


def _single_line(line: str | None) -> str:
    assert line is not None and "\n" not in line, line
    return line


def test_full_disk_names_the_file_and_says_free_space():
    exc = OSError(errno.ENOSPC, "No space left on device", "/data/ds/train/apple/000004.png")
    line = _single_line(user_error_line(exc))
    assert "No space left on device" in line and "/data/ds/train/apple/000004.png" in line
    assert "free space" in line and "rerun the same command" in line


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_forbidden_folder_is_named(code):
    exc = PermissionError(code, "Operation not permitted", "/runs/ro/.datasynth.lock")
    line = _single_line(user_error_line(exc))
    assert "'/runs/ro/.datasynth.lock'" in line and "make the folder '/runs/ro' writable" in line


def test_read_only_file_system_is_named():
    exc = OSError(errno.EROFS, "Read-only file system", "/mnt/cd/ds")
    line = _single_line(user_error_line(exc))
    assert "'/mnt/cd' is on a read-only file system" in line


def test_other_os_errors_are_bugs():
    assert user_error_line(OSError(errno.EIO, "Input/output error", "/x")) is None
    assert user_error_line(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None


def test_lost_prefect_api_names_the_url_and_both_ways_on():
    line = _single_line(user_error_line(_raised(_connect_error(f"{API}/task_runs/"))))
    assert f"Prefect API at {API}" in line
    assert "`datasynth server`" in line and "unset PREFECT_API_URL" in line


def test_lost_api_wrapped_by_prefect_is_found():
    """Prefect raises `RuntimeError(...) from ConnectError`, or a `CrashedRun` with a message."""
    wrapped = _raised(RuntimeError(f"Failed to reach API at {API}"), _connect_error(f"{API}/"))
    assert "Prefect API" in _single_line(user_error_line(wrapped))
    crashed = CrashedRun(f"Request to {API}/flow_runs/ failed: ConnectError: refused.")
    assert "Prefect API" in _single_line(user_error_line(crashed))


def test_other_http_failures_are_not_the_prefect_api():
    hub = _raised(_connect_error("https://huggingface.co/api/models/x"))
    assert user_error_line(hub) is None


@pytest.mark.parametrize(
    "exc",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        InjectedOutOfMemoryError("CUDA out of memory (injected, batch of 1)"),
    ],
    ids=["torch", "injected"],
)
def test_out_of_memory_says_lower_the_size_or_fp16(exc):
    line = _single_line(user_error_line(_raised(exc)))
    assert "out of memory" in line and "`width`/`height`" in line and "fp16" in line


def test_datasynth_errors_keep_their_message():
    assert user_error_line(DatasetLockedError("ds is locked by pid 7")) == "ds is locked by pid 7"
    assert user_error_line(ConfigError("invalid config x:\n  `steps`")) == (
        "invalid config x:\n  `steps`"
    )


def test_a_user_error_is_found_through_explicit_chaining_only():
    full = OSError(errno.ENOSPC, "No space left on device", "/d/f.png")
    assert user_error_line(_raised(RuntimeError("task failed"), full)) is not None
    # A KeyError raised while handling the full disk is a bug in the handler
    try:
        try:
            raise full
        except OSError:
            {}["missing"]
    except KeyError as bug:
        assert user_error_line(bug) is None


def test_an_exception_group_is_the_users_only_when_every_member_is():
    full = OSError(errno.ENOSPC, "No space left on device", "/d/f.png")
    assert user_error_line(ExceptionGroup("tasks", [full, full])) is not None
    assert user_error_line(ExceptionGroup("tasks", [full, KeyError("x")])) is None


def test_main_prints_one_line_and_exits_2_or_keeps_a_bugs_traceback(monkeypatch, capsys):
    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device", "/d/f.png")

    monkeypatch.setattr(flows.cli, "app", full_disk)
    with pytest.raises(SystemExit) as exit_info:
        flows.cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the disk is full") and err.count("\n") == 1, err

    def bug():
        raise KeyError("bug")

    monkeypatch.setattr(flows.cli, "app", bug)
    with pytest.raises(KeyError):
        flows.cli.main()


def test_logged_user_failures_keep_their_message_but_not_their_traceback(caplog):
    """Prefect logs a failed task with `logger.exception`: a full disk prints no traceback."""
    log = logging.getLogger("tests.cli_errors")

    def log_failure(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:  # noqa: BLE001 - logged, as Prefect does
            log.exception("Task run failed with exception: %r", exc)
        return caplog.records[-1]

    full = OSError(errno.ENOSPC, "No space left on device", "/d/f.png")
    with caplog.at_level(logging.ERROR), user_tracebacks_dropped():
        assert log_failure(full).exc_info is None
        assert "No space left on device" in caplog.records[-1].getMessage()
        assert log_failure(KeyError("bug")).exc_info is not None
    with caplog.at_level(logging.ERROR):
        assert log_failure(full).exc_info is not None  # the factory is restored
