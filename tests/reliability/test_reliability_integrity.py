"""Issue 15, items 4, 10, 11 and 12: what a captive portal, fork(), a broken OMNIHUB_HOME
and out-of-range settings still broke -- against real loopback servers and real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from omnihub.locking import try_target_lock

from tests.runtime.fault_server import Fault
from tests.runtime.helpers import REPO, Env, child_env, entry, entry_json, payload

FILE = "model.fb"


def _wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- item 10: a fork()ed child never inherits a download's lock --------------------------

_FORKING_PARENT = """
import json, os, sys, threading, time
from omnihub.catalog import catalog_from_json
from omnihub.hub import fetch
model = catalog_from_json(sys.argv[1]).models[0]
threading.Thread(target=fetch, args=(model,), daemon=True).start()
partial = sys.argv[2]
while not os.path.exists(partial):  # the lock is held once the partial exists
    time.sleep(0.01)
pid = os.fork()  # a DataLoader worker: forked while the download holds the lock
if pid == 0:
    time.sleep(120)
    os._exit(0)
print(json.dumps({"child": pid}), flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_does_not_keep_the_download_lock_after_the_parent_dies(
    env: Env,
) -> None:
    """A process forks (a DataLoader worker) while its download thread holds the lock, then is
    SIGKILLed. The lock must be free at once for everyone else, although the unrelated child
    (which inherited the descriptors) lives on; another process then gets the file."""
    data = payload(2_000_000, seed=151)
    where = env.publish(FILE, data)
    release = threading.Event()
    env.server.fault(where, Fault.stall(500_000, release))
    model = entry(data=data)
    target = env.home / "samediff" / FILE
    parent = subprocess.Popen(
        [sys.executable, "-c", _FORKING_PARENT, entry_json(model), f"{target}.incomplete"],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = json.loads(parent.stdout.readline())["child"]
        with try_target_lock(target) as free:
            assert not free, "the parent's download should hold the lock"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        release.set()
        os.kill(child, 0)  # the child is alive and still holds the inherited descriptors
        deadline = time.monotonic() + 5
        while True:
            with try_target_lock(target) as free:
                if free:
                    break
            assert time.monotonic() < deadline, (
                "the lock is still held after its owner died: the forked child inherited it"
            )
            time.sleep(0.05)
    finally:
        release.set()
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if child:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
