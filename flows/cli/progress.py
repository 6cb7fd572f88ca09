"""A terminal progress bar fed by the dataset's manifest: the files on disk are the truth."""

from __future__ import annotations

import threading
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from synth.generation import manifest_path, read_manifest


class ManifestProgress:
    """Polls `<out>/train/metadata.jsonl` and shows images counted out of `total`."""

    def __init__(self, out: Path, total: int, interval: float = 0.5) -> None:
        self.out, self.total, self.interval = Path(out), total, interval
        self._stop = threading.Event()
        self._progress = Progress(
            TextColumn("[bold]generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _count(self) -> int:
        try:
            return len({r.file_name for r in read_manifest(manifest_path(self.out))})
        except (OSError, ValueError):
            return 0

    def _poll(self) -> None:
        task = self._progress.add_task("images", total=self.total)
        while not self._stop.wait(self.interval):
            self._progress.update(task, completed=min(self._count(), self.total))
        self._progress.update(task, completed=min(self._count(), self.total))

    def __enter__(self) -> ManifestProgress:
        self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._progress.stop()
