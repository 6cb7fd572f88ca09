"""`datasynth generate` when the world fails: a full disk, a read-only folder, a lost Prefect API.

Each test first checks what must never break (the dataset stays valid, a rerun completes it
without redoing finished images), then how the failure was reported: one `error: ...` line that
names the file, folder or server (flows/cli/errors.py), and no traceback anywhere in the output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synth.config import GenerationConfig
from synth.generation import manifest_path, read_manifest
from tests.conftest import start_prefect_server
from tests.reliability.audit import audit, final_images
from tests.reliability.disk import read_only, tree
from tests.reliability.engine import record, write_toml

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(2400)]


def cli(config: Path, out: Path, *args: str, env: dict | None = None, timeout: int = 600):
    return subprocess.run(
        [sys.executable, "-m", "flows", "generate", str(config), "--out", str(out), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def message_is_clear(stderr: str, *words: str) -> bool:
    """An `error: ...` line that holds `words`, and no traceback."""
    return "Traceback" not in stderr and any(
        line.startswith("error:") and all(w in line for w in words) for line in stderr.splitlines()
    )


def error_line(stderr: str) -> str:
    """The `error: ...` line, or the final `SomeError: message` of a traceback (rich wraps it:
    lines are joined back)."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1]
    starts = [i for i, line in enumerate(lines) if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return " ".join(lines[starts[-1] :]) if starts else (lines[-1] if lines else "")


def assert_clear(stderr: str, *words: str) -> None:
    assert message_is_clear(stderr, *words), (
        f"expected one `error: ...` line holding {words} and no traceback; got: {stderr[-3000:]}"
    )


@pytest.fixture
def config16(tiny_model_dir) -> GenerationConfig:
    return GenerationConfig(
        classes=["apple", "banana"],
        images_per_class=8,
        model=str(tiny_model_dir),
        steps=3,
        width=64,
        height=64,
        batch_size=4,
        seed=5,
    )


# ----------------------------------------------------------------------------------- disk full

_TMPFS_SCRIPT = """
set -u
mount -t tmpfs -o size=64k,mode=0755 tmpfs "$DISK"
"$PY" -m flows generate "$CFG" --out "$DISK/ds" --retries 1 --retry-delay 0 2>"$SAVE/full.err"
echo $? > "$SAVE/full.rc"
cp -a "$DISK/ds" "$SAVE/after-full"
find "$DISK/ds" -name '*.png' -printf '%P %i %T@\\n' | sort > "$SAVE/ids-before"
mount -o remount,size=16m "$DISK"
"$PY" -m flows generate "$CFG" --out "$DISK/ds" 2>"$SAVE/rerun.err"
echo $? > "$SAVE/rerun.rc"
find "$DISK/ds" -name '*.png' -printf '%P %i %T@\\n' | sort > "$SAVE/ids-after"
cp -a "$DISK/ds" "$SAVE/final"
"""


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"], capture_output=True
    )
    return probe.returncode == 0


@pytest.mark.usefixtures("prefect_server")
def test_cli_on_a_full_disk_fails_keeps_the_manifest_valid_and_resumes(tmp_path, config16):
    """A real 64 kB tmpfs (in a private mount namespace) fills up after ~5 images."""
    if not _can_mount_tmpfs():
        pytest.skip("no private mount namespace here (`unshare -m` + tmpfs need CAP_SYS_ADMIN)")
    disk, save = tmp_path / "disk", tmp_path / "save"
    disk.mkdir()
    save.mkdir()
    env = {
        **os.environ,
        "DISK": str(disk),
        "SAVE": str(save),
        "CFG": str(write_toml(tmp_path / "gen.toml", config16)),
        "PY": sys.executable,
    }
    subprocess.run(["unshare", "-m", "sh", "-c", _TMPFS_SCRIPT], env=env, check=True, timeout=900)
    full_rc, full_err = int((save / "full.rc").read_text()), (save / "full.err").read_text()
    assert full_rc != 0, full_err[-2000:]
    assert "No space left on device" in full_err
    crashed = audit(save / "after-full", config16, finished=False)
    assert not crashed.problems() and 0 < crashed.counted < 16, crashed
    assert not list((save / "after-full").rglob("*.tmp-*")), "a failed write left its temp file"
    assert int((save / "rerun.rc").read_text()) == 0, (save / "rerun.err").read_text()[-2000:]
    final = audit(save / "final", config16)
    before = dict(line.split(" ", 1) for line in (save / "ids-before").read_text().splitlines())
    after = dict(line.split(" ", 1) for line in (save / "ids-after").read_text().splitlines())
    redone = sum(1 for name, ident in before.items() if after.get(name) != ident)
    assert not final.problems() and final.counted == 16 and redone == 0, (final, redone)
    record(
        "cli-enospc-tmpfs",
        counted_when_full=crashed.counted,
        message=error_line(full_err),
        redone=redone,
        **final.problems(),
    )
    assert_clear(full_err, "No space left on device", str(disk))


# ----------------------------------------------------------------------------------- read-only


@pytest.mark.usefixtures("prefect_server")
def test_cli_on_a_read_only_folder_fails_and_writes_nothing(tmp_path, config16):
    out = tmp_path / "ro"
    out.mkdir()
    config = write_toml(tmp_path / "gen.toml", config16)
    with read_only(out):
        run = cli(config, out, "--retries", "0")
        assert run.returncode != 0
        assert tree(out) == {}, "a read-only folder was written"
    rerun = cli(config, out)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert not audit(out, config16).problems()
    record("cli-read-only", returncode=run.returncode, message=error_line(run.stderr))
    assert_clear(run.stderr, str(out))


# ----------------------------------------------------------------------- Prefect API goes away


def test_cli_whose_prefect_api_dies_fails_and_resumes_on_a_new_server(tmp_path, tiny_model_dir):
    """Kill the Prefect server once 4 images are counted; the run must end, not hang."""
    config = GenerationConfig(
        classes=["apple", "banana"],
        images_per_class=24,
        model=str(tiny_model_dir),
        steps=3,
        width=64,
        height=64,
        batch_size=4,
        seed=5,
    )
    config_file = write_toml(tmp_path / "gen.toml", config)
    home = tmp_path / "prefect-home"
    home.mkdir()
    out = tmp_path / "ds"
    server, lost_url = start_prefect_server(home)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": lost_url}
    run = subprocess.Popen(
        [sys.executable, "-m", "flows", "generate", str(config_file), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while len(read_manifest(manifest_path(out))) < 4 and run.poll() is None:
            time.sleep(0.2)
        server.kill()
        server.wait()
        killed_at = len(read_manifest(manifest_path(out)))
        started = time.monotonic()
        _, stderr = run.communicate(timeout=900)  # a hang fails the test here
        gave_up_after = time.monotonic() - started
    finally:
        run.kill()
        server.kill()
    assert run.returncode != 0, "the run cannot succeed without its API"
    crashed = audit(out, config, finished=False)
    assert not crashed.problems(), crashed

    server, url = start_prefect_server(home)
    try:
        before = final_images(out)
        rerun = cli(config_file, out, env={"PREFECT_HOME": str(home), "PREFECT_API_URL": url})
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = audit(out, config, before)
    assert not final.problems() and final.counted == 48, final
    record(
        "cli-api-lost",
        counted_at_kill=killed_at,
        counted_at_exit=crashed.counted,
        seconds_to_give_up=round(gave_up_after),
        returncode=run.returncode,
        message=error_line(stderr)[:300],
    )
    assert_clear(stderr, "Prefect", lost_url, "datasynth server")
