import signal
import subprocess
import sys
import time

import pytest

from synth.errors import DatasetLockedError
from synth.lock import DatasetLock


def test_dataset_lock_refuses_a_second_holder_with_its_pid(tmp_path):
    with (
        DatasetLock(tmp_path),
        pytest.raises(DatasetLockedError, match="another datasynth run"),
        DatasetLock(tmp_path),
    ):
        pass
    with DatasetLock(tmp_path):  # released on exit
        pass


def test_dataset_lock_is_released_when_its_process_is_killed(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; from synth.lock import DatasetLock\n"
        f"l = DatasetLock(Path({str(tmp_path)!r})).__enter__(); print('held', flush=True); "
        "time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(DatasetLockedError, match=str(proc.pid)):
        DatasetLock(tmp_path).__enter__()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    with DatasetLock(tmp_path):
        pass
