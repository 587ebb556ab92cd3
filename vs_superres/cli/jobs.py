"""``superres jobs list | clean [PATH]``: the journals of resumable video jobs in a folder.

``list`` shows each work folder (``.OUTPUT.superres-job``) with its output, input, model, the
segments and seconds of video it keeps; ``clean`` removes them (and folders set aside by a
fresh start), except one a running job holds, which is named and left alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from vs_superres.contracts.errors import SuperResError
from vs_superres.jobs.journal import STALE_SUFFIX, WORK_SUFFIX, list_jobs


def _output_name(folder: Path) -> str:
    name = folder.name[1:]
    for suffix in (STALE_SUFFIX, WORK_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _in_use(folder: Path) -> bool:
    lock = folder / "lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def cmd_jobs(args) -> int:
    folder = Path(args.path or ".")
    if not folder.is_dir():
        raise SuperResError(f"'{folder}' is not a folder; give the folder that holds the outputs")
    found = list(list_jobs(folder))
    if args.action == "list":
        if not found:
            print(f"no journaled jobs in '{folder}'")
        for path, data in found:
            stale = " (set aside)" if path.name.endswith(STALE_SUFFIX) else ""
            busy = " (running)" if _in_use(path) else ""
            if data is None:
                print(f"{_output_name(path)}{stale}{busy}: journal unreadable ({path})")
                continue
            identity = data.get("identity", {})
            segments = data.get("segments", {})
            frames = sum(int(s.get("frames", 0)) for s in segments.values())
            size = sum(int(s.get("size", 0)) for s in segments.values())
            print(f"{_output_name(path)}{stale}{busy}: {len(segments)} segments ({frames} frames, "
                  f"{size / 1e6:.1f} MB) from {identity.get('input', '?')} with {identity.get('model', '?')}")
        return 0
    removed = 0
    for path, _ in found:
        if _in_use(path):
            print(f"kept {path.name}: a superres process is writing '{_output_name(path)}' now")
            continue
        shutil.rmtree(path)
        removed += 1
        print(f"removed {path.name}")
    print(f"{removed} journal folder(s) removed")
    return 0
