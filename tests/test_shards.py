"""Shards of one dataset (several work-pool workers): a partition, locks, and the same digest."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from flows.generate import generate_dataset
from synth.errors import DatasetLockedError
from synth.generation import (
    Shard,
    generate_batch,
    model_info,
    plan_batches,
    plan_images,
    prepare_output,
    split_batches,
)
from synth.lock import DatasetLock, validate_shard
from synth.storage import TEMP_MARKER
from tests.helpers import assert_dataset_intact


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shard_batches_partition_the_fixed_batches(tiny_config, count):
    batches = split_batches(plan_images(tiny_config), tiny_config.batch_size)
    owned = [plan_batches(tiny_config, Shard(index, count)) for index in range(count)]
    numbers = sorted(b.number for shard in owned for b in shard)
    assert numbers == list(range(len(batches)))  # each batch in exactly one shard
    for index, shard in enumerate(owned):
        assert all(b.number % count == index and b.items == batches[b.number] for b in shard)


@pytest.mark.parametrize(("index", "count"), [(2, 2), (-1, 2), (0, 0)])
def test_validate_shard_rejects_an_index_outside_the_count(index, count):
    with pytest.raises(ValueError, match="`shard_index` must be in"):
        validate_shard(index, count)


def test_dataset_lock_lets_shards_share_a_dataset_but_not_a_shard(tmp_path):
    with DatasetLock(tmp_path, shard=(0, 2)), DatasetLock(tmp_path, shard=(1, 2)):
        with pytest.raises(DatasetLockedError, match=f"pid {os.getpid()}"):
            DatasetLock(tmp_path, shard=(1, 2)).__enter__()  # the same shard twice
        with pytest.raises(DatasetLockedError, match="sharded runs"):
            DatasetLock(tmp_path).__enter__()  # an unsharded run repairs everything: not now
    with DatasetLock(tmp_path), pytest.raises(DatasetLockedError, match=f"pid {os.getpid()}"):
        DatasetLock(tmp_path, shard=(0, 2)).__enter__()
    with DatasetLock(tmp_path, shard=(0, 2)):  # all released
        pass
    with pytest.raises(ValueError, match="shard_index"):
        DatasetLock(tmp_path, shard=(3, 2))


def test_prepare_shard_repairs_its_own_files_only(tmp_path, tiny_config):
    prepare_output(tmp_path, tiny_config, model_info(tiny_config))
    for items in split_batches(plan_images(tiny_config), tiny_config.batch_size):
        generate_batch(tiny_config, tmp_path, items)
    mine, theirs = (
        plan_batches(tiny_config, Shard(0, 2))[0].items,
        plan_batches(tiny_config, Shard(1, 2))[0].items,
    )
    split = tmp_path / "train"
    corrupt = {mine[0].file_name, theirs[0].file_name}
    for name in corrupt:
        path = split / name
        path.write_bytes(path.read_bytes()[:-1] + b"\x00")  # no longer its manifest sha256
        (path.parent / f".{path.name}{TEMP_MARKER}99").write_bytes(b"half")
    state = prepare_output(tmp_path, tiny_config, shard=Shard(0, 2))
    assert state.missing == (mine[0],)
    assert state.repairs == {
        "temp_files_removed": 1,
        "corrupt_files_removed": 1,
        "changed_to_regenerate": 0,
    }
    assert not (split / mine[0].file_name).exists()
    theirs_path = split / theirs[0].file_name
    assert (
        theirs_path.exists()
        and (theirs_path.parent / f".{theirs_path.name}{TEMP_MARKER}99").exists()
    )


_SHARD = """
import sys
from flows.generate import generate_dataset
from synth.config import GenerationConfig
config = GenerationConfig.model_validate_json(sys.argv[1])
ref = generate_dataset(config, sys.argv[2], shard_index=int(sys.argv[3]), shard_count=2)
print(ref.digest)
"""


@pytest.mark.usefixtures("prefect_server")
def test_two_shards_in_two_processes_write_the_unsharded_dataset(tmp_path, tiny_config):
    unsharded = generate_dataset(tiny_config, str(tmp_path / "one"), retry_delay_seconds=0)
    # the same torch thread count as this process: on a CPU it decides some image bytes
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    shards = [
        subprocess.Popen(
            [sys.executable, "-c", _SHARD, tiny_config.model_dump_json(), str(tmp_path / "two"),
             str(index)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for index in (0, 1)
    ]  # fmt: skip
    outputs = [shard.communicate(timeout=600) for shard in shards]
    for shard, (_, err) in zip(shards, outputs, strict=True):
        assert shard.returncode == 0, err[-3000:]
    # whichever shard finished last saw the whole dataset and wrote dataset.json
    summary = json.loads((tmp_path / "two" / "dataset.json").read_text())
    assert summary["digest"] == unsharded.digest
    assert unsharded.digest in [out.strip().splitlines()[-1] for out, _ in outputs]
    assert_dataset_intact(tmp_path / "two", {"apple": 6, "banana": 6})
    pngs = [
        {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.png")}
        for root in (tmp_path / "one", tmp_path / "two")
    ]
    assert pngs[0] == pngs[1]
    # an unsharded run afterwards finds nothing to do
    again = generate_dataset(tiny_config, str(tmp_path / "two"), retry_delay_seconds=0)
    assert again.digest == unsharded.digest
