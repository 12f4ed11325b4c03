"""Lock files: one process per output, across processes and hosts.

``train`` locks its ``--out`` and ``ablate`` each run it trains, so two commands on one
folder never write the same file: the second stops before any work, naming the holder.
A lock holds its process's PID and host; one left by a process that died (SIGKILL, a power
cut) is taken over: at once on the same host, after ``LOCK_STALE_S`` on another.
"""
import contextlib
import os
import re
import socket
import threading
import time
from pathlib import Path

__all__ = ["LOCK_STALE_S", "take_lock", "lock_holder", "release_lock", "remove_litter"]


def _host():
    return socket.gethostname()


#: A lock of another host (a shared filesystem) cannot be checked by its PID; it counts as
#: held while its holder keeps touching it (every ``LOCK_STALE_S / 4`` seconds, at most 60),
#: and as stale, to be taken over, once it is older than this: a worker killed by SIGKILL
#: on another machine holds its run for at most this long. ``D2L_EXT_LOCK_STALE_S`` sets it.
LOCK_STALE_S = float(os.environ.get("D2L_EXT_LOCK_STALE_S", 600))
_held_locks = set()
_heartbeat = None


def _beat():
    while True:
        time.sleep(min(60.0, LOCK_STALE_S / 4))
        for path in list(_held_locks):
            with contextlib.suppress(OSError):
                os.utime(path)


def _hold(path):
    """Keep the lock ``path`` fresh from a daemon thread until ``release_lock``."""
    global _heartbeat
    _held_locks.add(Path(path))
    if _heartbeat is None:
        _heartbeat = threading.Thread(target=_beat, name="d2l_ext lock heartbeat", daemon=True)
        _heartbeat.start()


def lock_holder(path):
    """``(pid, host)`` of the live process that holds the lock file ``path``, or None.

    None when there is no file, or it is stale: its PID is not running on this host (a run
    killed by SIGKILL or a power cut never removes its lock), or, for a lock of another host,
    whose PID cannot be checked, it has not been touched for ``LOCK_STALE_S`` seconds (its
    holder touches it while it runs). A file without a PID counts as held for 10 s (its
    writer is between creating and filling it), stale after.
    """
    path = Path(path)
    try:
        text, age = path.read_text(), time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        text, age = "", 0.0
    parts = text.split()
    if not parts or not parts[0].isdigit():
        return None if age > 10 else ("?", "?")
    pid, host = int(parts[0]), (parts[1] if len(parts) > 1 else _host())
    if host != _host():
        return (pid, host) if age <= LOCK_STALE_S else None
    return (pid, host) if _alive(pid) else None


def _alive(pid):
    """Whether ``pid`` is a running process here (a zombie, dead but not yet reaped by its
    parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def take_lock(path):
    """Create the lock file ``path`` holding this process's PID and host name: None when
    taken, else ``(pid, host)`` of the process that holds it. A stale lock
    (``lock_holder``) is taken over. Why: two runs writing one folder each believe the
    files are theirs; the second must stop before any work, saying who holds it."""
    path = Path(path)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_holder(path)
            if holder is not None:
                return holder
            with contextlib.suppress(FileNotFoundError):
                path.unlink()           # stale: take it over
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {_host()}\n")
        _hold(path)
        return None
    return lock_holder(path) or ("?", "?")


def release_lock(path):
    """Remove the lock file ``path`` if this process holds it."""
    path = Path(path)
    _held_locks.discard(path)
    with contextlib.suppress(OSError, UnicodeDecodeError):
        parts = path.read_text().split()
        if parts and parts[0] == str(os.getpid()) and parts[1:2] in ([], [_host()]):
            path.unlink()


def remove_litter(folder, names):
    """Delete the temporary files ``<name>.tmp<digits>`` (``atomic_save``) and
    ``<name>.tmp`` in ``folder`` that a killed writer left (SIGKILL runs no cleanup); call
    it only while holding the lock that covers those names. Returns the paths removed."""
    removed = []
    for name in names:
        pattern = re.compile(re.escape(name) + r"\.tmp\d*")
        for entry in Path(folder).glob(name.replace("[", "[[]") + ".tmp*"):
            if pattern.fullmatch(entry.name) and entry.is_file():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry)
    return removed
