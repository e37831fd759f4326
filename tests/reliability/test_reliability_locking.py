"""The per-target lock under stress, across real processes: exactly one holder at a time, a
SIGKILLed holder never blocks anyone, and a lock file unlinked while others wait still leaves
exactly one holder.

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
# With ``unlink``, remove the lock file while still holding it, as the last act inside (the
# protocol every remover follows, e.g. cache.remove), so later contenders create a new one.
# With ``slow``, an audit hook sleeps between opening the lock file and flock-ing it: that is
# where a contender can open a file that is unlinked a moment later, so the window a missing
# identity check needs is wide.
_CONTENDER = """
import fcntl, json, os, sys, time
from pathlib import Path
target, rounds = Path(sys.argv[1]), int(sys.argv[2])
unlink, slow = sys.argv[3] == "1", sys.argv[4] == "1"
if slow:
    def _audit(event, args):
        if event == "fcntl.flock" and args[1] == fcntl.LOCK_EX | fcntl.LOCK_NB:
            time.sleep(0.001)
    sys.addaudithook(_audit)
from omnihub.locking import lock_path, target_lock
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
        if unlink:  # the holder's last act, as in cache.remove: after it, a newcomer may
            os.unlink(lock_path(target))  # create and lock a new file at once
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


def _contend(tmp_path: Path, *, processes: int, rounds: int, unlink: bool, slow: bool) -> None:
    target = tmp_path / "m.bin"
    target.with_name("counter").write_text("0")
    flags = ("1" if unlink else "0", "1" if slow else "0")
    children = [_spawn(_CONTENDER, str(target), str(rounds), *flags) for _ in range(processes)]
    overlaps = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        overlaps.append(json.loads(out)["overlaps"])
    assert overlaps == [0] * processes
    assert int(target.with_name("counter").read_text()) == processes * rounds


def test_many_processes_hold_the_lock_one_at_a_time(tmp_path: Path) -> None:
    _contend(tmp_path, processes=6, rounds=30, unlink=False, slow=False)


def test_a_lock_file_unlinked_while_others_wait_still_has_one_holder(tmp_path: Path) -> None:
    """Every holder unlinks the lock file before letting go; contenders that opened the old
    file (slowed down right between open and flock) must notice and start over."""
    _contend(tmp_path, processes=6, rounds=25, unlink=True, slow=True)


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
def _audit(event, args):
    if event == "fcntl.flock" and args[1] == fcntl.LOCK_SH:  # the blocking shared wait
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


# Runs cache.remove, pausing right before it unlinks the lock file until the parent says go.
_REMOVER = """
import sys
from pathlib import Path
def _audit(event, args):
    if event == "os.remove" and str(args[0]).endswith(".lock"):
        print("unlinking the lock file", flush=True)
        sys.stdin.readline()
sys.addaudithook(_audit)
from omnihub.cache import remove
remove([Path(sys.argv[1])])
print("removed", flush=True)
"""


def test_cache_remove_unlinking_the_lock_file_leaves_one_holder(tmp_path: Path) -> None:
    """Deterministic interleaving: cache.remove is paused just before it unlinks the lock
    file; a contender takes the lock then (if it can), then a newcomer after the unlink. At
    most one of them may believe it holds the lock."""
    target = tmp_path / "m.bin"
    target.write_bytes(b"cached")
    remover = subprocess.Popen(
        [sys.executable, "-c", _REMOVER, str(target)],
        cwd=REPO,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert remover.stdin is not None
    try:
        assert _line(remover) == "unlinking the lock file"
        with try_target_lock(target) as contender:
            remover.stdin.write("go\n")
            remover.stdin.flush()
            assert _line(remover) == "removed"
            with try_target_lock(target) as newcomer:
                assert newcomer
                assert not contender, "two holders: the contender's lock file was unlinked"
    finally:
        remover.kill()
        remover.communicate()
    assert not target.exists()
