"""A Ray worker that waits to be killed, for tests/test_ray_engine.py (Ray's worker processes import it from the
tests folder, which that test puts on their PYTHONPATH)."""

import os
import time
from pathlib import Path

from xai_fer.explain.rayengine import ChunkWorker


class KillableWorker(ChunkWorker):
    """On its second chunk, writes ``<pid> <chunk start>`` to ``pid`` in the side channel folder (the test's
    ``XAI_FER_TEST_SIDE_CHANNEL``) and waits there to be killed; only the first worker to get there does (the
    file is created once), so the worker Ray restarts in its place just computes. Every chunk a worker finishes
    is recorded as ``done/<chunk start>-<pid>``."""

    def __init__(self, job, threads):
        super().__init__(job, threads)
        self.side_channel = Path(os.environ["XAI_FER_TEST_SIDE_CHANNEL"])
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        start = int(batch["start"][0])
        if self.calls == 2 and self._claim_the_kill(start):
            time.sleep(120)  # killed long before
        result = super().__call__(batch)
        (self.side_channel / "done" / f"{start}-{os.getpid()}").touch()
        return result

    def _claim_the_kill(self, start: int) -> bool:
        try:
            handle = os.open(self.side_channel / "pid", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return False
        os.write(handle, f"{os.getpid()} {start}".encode())
        os.close(handle)
        return True
