"""Drives tests/faultvfs (libfaultvfs.so) from a test: the environment that
preloads it into a fleet-hub or fleet-agent, and the control file that switches
faults on and off while the process runs.

    fv = FaultVfs(tmpdir)
    with Hub(broker, env=fv.env(cache_file="hub.db", cache_pages=8)) as hub:
        fv.arm(file="hub.db", op="write", nth=3, error="full")
        ...
        fv.status()   # {'id': '1', 'ops': 3, 'fired': 1, ...}
        fv.clear()

Under AddressSanitizer the sanitizer runtime must come first in the list of
libraries a program starts with; a library in LD_PRELOAD would come before
it. env() therefore puts the program's own libasan first when the build has
one (found with ldd), and also sets verify_asan_link_order=0.
"""

import os
import re
import subprocess
import time
from pathlib import Path

from fleet import BUILD

LIBRARY = BUILD / "tests" / "libfaultvfs.so"


def _asan_runtime(program):
    """Returns the path of the AddressSanitizer runtime program links, or None."""
    try:
        out = subprocess.run(["ldd", str(program)], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\S*libasan\.so\S*) => (\S+)", out)
    return m.group(2) if m else None


class FaultVfs:
    """One control file and one status file in directory `where`."""

    def __init__(self, where):
        self.dir = Path(where)
        self.control = self.dir / "faultvfs.control"
        self.status_path = self.dir / "faultvfs.status"
        self._ids = 0
        self.control.write_text("")

    def env(self, program=BUILD / "hub" / "fleet-hub", cache_file=None, cache_pages=None):
        """The environment that preloads the shim into program, reading this
        control file; cache_file/cache_pages shrink that database's page cache
        (so that writes happen in the middle of a transaction)."""
        assert LIBRARY.exists(), f"{LIBRARY} not built"
        preload = [str(LIBRARY)]
        asan = _asan_runtime(program)
        env = {"FAULTVFS_CONTROL": str(self.control), "FAULTVFS_STATUS": str(self.status_path)}
        if asan:
            preload.insert(0, asan)
            options = os.environ.get("ASAN_OPTIONS", "")
            env["ASAN_OPTIONS"] = (options + ":" if options else "") + "verify_asan_link_order=0"
        env["LD_PRELOAD"] = ":".join(preload)
        if cache_file:
            env["FAULTVFS_CACHE_FILE"] = cache_file
            env["FAULTVFS_CACHE_PAGES"] = str(cache_pages)
        return env

    def _write(self, text):
        tmp = self.dir / "faultvfs.control.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.control)  # a new inode: the shim sees the change

    def arm(self, file, op="write", nth=1, mode="once", error="full"):
        """Fails the nth matching op (and every later one with mode="after")
        counted from now. Returns the spec's id."""
        self._ids += 1
        self._write(f"id={self._ids} file={file} op={op} nth={nth} mode={mode} error={error}\n")
        return str(self._ids)

    def clear(self):
        """No more faults."""
        self._ids += 1
        self._write(f"id={self._ids}\n")

    def status(self):
        """The shim's status for the current spec: {'id', 'ops', 'fired',
        'last', 'path'}; ops and fired are 0 until a matching op came."""
        try:
            text = self.status_path.read_text()
        except FileNotFoundError:
            text = ""
        fields = dict(w.split("=", 1) for w in text.split() if "=" in w)
        if fields.get("id") != str(self._ids):
            return {"id": str(self._ids), "ops": 0, "fired": 0}
        fields["ops"] = int(fields["ops"])
        fields["fired"] = int(fields["fired"])
        return fields

    def wait_fired(self, timeout):
        """Waits up to timeout s for the armed fault to fire; returns True if it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status()["fired"] > 0:
                return True
            time.sleep(0.02)
        return False
