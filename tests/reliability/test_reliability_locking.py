"""The per-target lock under stress, across real processes: exactly one holder at a time, a
SIGKILLed holder never blocks anyone, and cache maintenance never deletes a lock file (so
every holder always locks the same inode).

Mutual exclusion is checked two ways inside the critical section: an ``O_EXCL`` marker file
(creating it fails if another holder is inside) and a read-sleep-write counter (a lost update
shows in the final count). No test asserts a duration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from omnihub.locking import lock_path, target_lock, try_target_lock

from tests.runtime.helpers import REPO, child_env

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock-based lock tests are POSIX-only")

# Runs in each contender: take the lock ``rounds`` times; inside, check nobody else is.
# With ``slow``, an audit hook sleeps before each flock try, widening every race window.
_CONTENDER = """
import fcntl, json, os, sys, time
from pathlib import Path
target, rounds = Path(sys.argv[1]), int(sys.argv[2])
slow = sys.argv[3] == "1"
if slow:
    def _audit(event, args):
        if event == "fcntl.flock" and args[1] == fcntl.LOCK_EX | fcntl.LOCK_NB:
            time.sleep(0.001)
    sys.addaudithook(_audit)
from omnihub.locking import target_lock
inside, counter = target.with_name("inside"), target.with_name("counter")
overlaps = 0
for _ in range(rounds):
    with target_lock(target) as held:
        assert held
        try:
            os.close(os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            overlaps += 1
        seen = int(counter.read_text() or "-1000000")
        time.sleep(0.0005)
        counter.write_text(str(seen + 1))
        try:
            os.unlink(inside)
        except FileNotFoundError:
            pass
print(json.dumps({"overlaps": overlaps}))
"""


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _contend(tmp_path: Path, *, processes: int, rounds: int, slow: bool) -> None:
    target = tmp_path / "m.bin"
    target.with_name("counter").write_text("0")
    flag = "1" if slow else "0"
    children = [_spawn(_CONTENDER, str(target), str(rounds), flag) for _ in range(processes)]
    overlaps = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        overlaps.append(json.loads(out)["overlaps"])
    assert overlaps == [0] * processes
    assert int(target.with_name("counter").read_text()) == processes * rounds


def test_many_processes_hold_the_lock_one_at_a_time(tmp_path: Path) -> None:
    _contend(tmp_path, processes=6, rounds=30, slow=False)


def test_slowed_contenders_still_hold_the_lock_one_at_a_time(tmp_path: Path) -> None:
    _contend(tmp_path, processes=6, rounds=25, slow=True)


_HOLDER = """
import sys, time
from pathlib import Path
from omnihub.locking import target_lock
with target_lock(Path(sys.argv[1])) as held:
    print("locked", held, flush=True)
    time.sleep(600)
"""

_WAITER = """
import fcntl, sys
from pathlib import Path
tries = []
def _audit(event, args):  # a second non-blocking try: the lock is held and we poll
    if event == "fcntl.flock" and args[1] & fcntl.LOCK_NB:
        tries.append(1)
        if len(tries) == 2:
            print("waiting", flush=True)
sys.addaudithook(_audit)
from omnihub.locking import target_lock
with target_lock(Path(sys.argv[1]), ready=lambda: False) as held:
    print("held", held, flush=True)
"""


def _line(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if not line:
        child.kill()
        pytest.fail(f"child said nothing: {child.communicate()[1]}")
    return line


def test_a_sigkilled_holder_blocks_nobody(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    holder = _spawn(_HOLDER, str(target))
    waiters: list[subprocess.Popen[str]] = []
    try:
        assert _line(holder) == "locked True"
        waiters = [_spawn(_WAITER, str(target)) for _ in range(3)]
        for waiter in waiters:
            assert _line(waiter) == "waiting"
        with try_target_lock(target) as free:
            assert not free
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    for waiter in waiters:  # each takes the lock in turn; none is left waiting for the dead
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
        assert out.splitlines()[-1] == "held True"
    assert lock_path(target).exists()  # the dead holder's file is still there, and harmless
    with target_lock(target) as held:
        assert held


_REMOVER = """
import sys
from pathlib import Path
from omnihub.cache_admin import remove
print("removing", flush=True)
remove([Path(sys.argv[1])])
print("removed", flush=True)
"""


def test_cache_remove_waits_for_the_holder_and_keeps_the_lock_file(tmp_path: Path) -> None:
    """``cache rm`` of a file being downloaded waits for the download's lock, removes the
    file and its sidecars, and leaves the lock file: whoever comes next locks that same
    inode, so there is never a second holder."""
    target = tmp_path / "m.bin"
    target.write_bytes(b"cached")
    lock = lock_path(target)
    with target_lock(target) as held:
        assert held
        inode = lock.stat().st_ino
        remover = _spawn(_REMOVER, str(target))
        try:
            assert _line(remover) == "removing"
            with try_target_lock(target) as free:
                assert not free
            assert target.exists()  # still waiting for us
        except BaseException:
            remover.kill()
            raise
    out, err = remover.communicate(timeout=60)
    assert remover.returncode == 0, err
    assert out.splitlines()[-1] == "removed"
    assert not target.exists()
    assert lock.stat().st_ino == inode
