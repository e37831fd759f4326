"""The per-target lock (omnihub.locking): threads, ``ready()``, ``try_target_lock``, filelock
interoperation, a read-only directory, and what taking or waiting for the lock imports.

Other processes are real interpreters; nothing is mocked. No test asserts a duration: where
order matters, a child says what it is doing on a pipe (an audit hook on ``fcntl.flock``
reports the blocking shared wait) and the parent reads that line before going on.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from omnihub.locking import lock_path, target_lock, try_target_lock

from tests.runtime.helpers import REPO, child_env

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock-based lock tests are POSIX-only")


def _python(code: str, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*prefix, sys.executable, "-c", code, *args],
        cwd=REPO,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _line(child: subprocess.Popen[str]) -> str:
    """The child's next stdout line; fails with its stderr if it exited instead."""
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if not line:
        child.kill()
        pytest.fail(f"child said nothing: {child.communicate()[1]}")
    return line


def _finish(child: subprocess.Popen[str]) -> str:
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return out


def test_threads_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    counter = [0]
    inside: list[int] = []
    overlaps: list[int] = []

    def work(me: int) -> None:
        for _ in range(25):
            with target_lock(target) as held:
                assert held
                if inside:
                    overlaps.append(me)
                inside.append(me)
                seen = counter[0]
                time.sleep(0.0002)  # widen the window a lost update needs
                counter[0] = seen + 1
                inside.remove(me)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert overlaps == []
    assert counter[0] == 6 * 25


def test_a_wait_whose_work_is_not_done_takes_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    results: list[bool] = []

    def waiter() -> None:
        with target_lock(target, ready=lambda: False) as held:
            results.append(held)

    with target_lock(target):
        thread = threading.Thread(target=waiter)
        thread.start()
        thread.join(0.2)  # not a timing assert: only gives the waiter a chance to block
        assert results == []  # it cannot have the lock while we hold it
    thread.join(60)
    assert results == [True]


def test_a_waiter_asks_ready_more_often_than_it_tries_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cheap question (was the file published?) is asked every READY_POLL_SECONDS; the
    lock itself (filelock, ~0.1 ms a try) only on a growing interval up to LOCK_POLL_SECONDS,
    so 15 waiters notice a publish quickly without taking CPU from the download."""
    from omnihub import locking

    target = tmp_path / "m.bin"
    tries: list[int] = []
    asked: list[int] = []
    take = locking._take

    def counted_take(path: Path) -> object:
        tries.append(1)
        return take(path)

    def ready() -> bool:
        asked.append(1)
        return len(asked) >= 40  # "published" after 40 questions

    monkeypatch.setattr(locking, "_take", counted_take)
    with target_lock(target):
        results: list[bool] = []
        thread = threading.Thread(
            target=lambda: results.extend([_enter(target_lock(target, ready=ready))])
        )
        thread.start()
        thread.join(60)
    assert results == [False]  # returned on ready(), without the lock
    assert len(asked) == 40
    assert len(tries) < len(asked) / 2  # the lock was tried far less often than ready()
    assert locking.READY_POLL_SECONDS < locking.LOCK_POLL_SECONDS


def _enter(manager: AbstractContextManager[bool]) -> bool:
    with manager as held:
        return held


def test_try_target_lock_says_whether_the_lock_is_free(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    with try_target_lock(target) as free:
        assert free
        with try_target_lock(target) as again:  # another descriptor: excluded like a thread
            assert not again
    with target_lock(target), try_target_lock(target) as free:
        assert not free
    with try_target_lock(target) as free:
        assert free
    assert lock_path(target).exists()  # the lock file stays (unlinking it is the remover's job)


def test_try_target_lock_counts_an_unopenable_lock_file_as_busy(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    target = tmp_path / "m.bin"
    lock_path(target).symlink_to(victim)
    with try_target_lock(target) as free:
        assert not free
    with pytest.raises(OSError, match=f"Errno {errno.ELOOP}"), target_lock(target):  # O_NOFOLLOW
        pass
    assert victim.read_text() == "keep"


_HOLD_FILELOCK = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1], thread_local=False)
lock.acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""

_TRY_FILELOCK = """
from filelock import FileLock, Timeout
import sys
lock = FileLock(sys.argv[1], thread_local=False)
try:
    lock.acquire(timeout=0)
except Timeout:
    print("busy", flush=True)
else:
    print("free", flush=True)
    lock.release()
"""


def test_a_filelock_holder_in_another_process_excludes_us(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    holder = _python(_HOLD_FILELOCK, str(lock_path(target)))
    assert _line(holder) == "locked"
    try:
        with try_target_lock(target) as free:
            assert not free
        results: list[bool] = []
        thread = threading.Thread(target=lambda: results.extend(_take(target)))
        thread.start()
        thread.join(0.2)  # not a timing assert: only gives the waiter a chance to block
        assert results == []
    finally:
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()
    assert _line(holder) == "released"
    _finish(holder)
    thread.join(60)
    assert results == [True]


def _take(target: Path) -> list[bool]:
    with target_lock(target) as held:
        return [held]


def test_our_holder_excludes_a_filelock_in_another_process(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    with target_lock(target):
        assert _finish(_python(_TRY_FILELOCK, str(lock_path(target)))).strip() == "busy"
    assert _finish(_python(_TRY_FILELOCK, str(lock_path(target)))).strip() == "free"


_WAITING = """
import json, sys
from pathlib import Path
from omnihub.locking import target_lock
target = Path(sys.argv[1])
told = []
def ready():
    if not told:
        told.append(1)
        print("waiting", flush=True)
    return target.exists()
with target_lock(target, ready=ready) as held:
    pass
print(json.dumps({"held": held}))
"""


@pytest.mark.parametrize("published", [True, False])
def test_a_waiting_process_returns_without_the_lock_once_the_work_is_done(
    tmp_path: Path, published: bool
) -> None:
    """The waiter asks ``ready()`` while the holder has the lock: done means no lock (False)."""
    target = tmp_path / "m.bin"
    with target_lock(target):
        child = _python(_WAITING, str(target))
        assert _line(child) == "waiting"
        if published:
            target.write_bytes(b"published")
    report = json.loads(_finish(child).strip().splitlines()[-1])
    assert report == {"held": not published}


_NOTICE = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
import omnihub.locking as locking
locking.WAIT_NOTICE_SECONDS = 0.05
with locking.target_lock(Path(sys.argv[1]), label="pkg.model") as held:
    print("held", held, flush=True)
"""


def test_a_long_wait_is_logged_when_the_application_uses_logging(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    with target_lock(target):
        child = _python(_NOTICE, str(target))
        # Blocks until the notice comes: we hold the lock until the child has logged it.
        notice = f"omnihub pkg.model: waiting for another process downloading {target}"
        assert _line(child) == notice
    assert _finish(child).strip() == "held True"


def _read_only_runner() -> tuple[str, ...]:
    """How to run a child that cannot write to a chmod-ed directory (root ignores modes)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a read-only directory")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner")


_READ_ONLY = """
import sys
from pathlib import Path
from omnihub.locking import target_lock, try_target_lock
target = Path(sys.argv[1])
with try_target_lock(target) as free:
    print("try", free)
try:
    with target_lock(target):
        print("held")
except OSError as exc:
    print("OSError", exc.errno)
"""


def test_a_read_only_directory_raises_oserror(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    prefix = _read_only_runner()
    folder.chmod(0o555)
    try:
        out = _finish(_python(_READ_ONLY, str(folder / "m.bin"), prefix=prefix))
    finally:
        folder.chmod(0o755)
    assert out.split("\n")[:2] == ["try False", f"OSError {errno.EACCES}"]
    assert not lock_path(folder / "m.bin").exists()
