"""Why a kernel (or a worker running notebooks in process) died: a signal (which one), or memory (killed while its
memory use was near the limit).

:class:`KernelWatch` samples a running kernel's resident memory while a notebook runs, so when the kernel dies
the report can say how much it used against the limit that applies to it (the cgroup's ``memory.max``, the
address-space rlimit, or the machine's memory): SIGKILL at 90% of the limit is the out-of-memory killer.
"""

from __future__ import annotations

import resource
import signal
import threading
from pathlib import Path

import psutil
from nbclient.exceptions import DeadKernelError

SAMPLE_SECONDS = 0.2
NEAR_LIMIT = 0.8  # a kernel killed with this share of the memory limit in use ran out of memory


class KernelDied(DeadKernelError):
    """The kernel died while a notebook ran; the message says how (signal, status, memory)."""


def memory_limit() -> int | None:
    """The tightest memory limit for this process and its children, in bytes."""
    limits = []
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    limits.append(psutil.virtual_memory().total)
    return min(limits) if limits else None


class KernelWatch:
    """While active, samples the kernel process's peak resident memory."""

    def __init__(self, km) -> None:  # a jupyter_client KernelManager
        self.km = km
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: psutil.Process | None = None
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None:
            try:
                self._process = psutil.Process(process.pid)
            except psutil.Error:
                self._process = None

    def __enter__(self) -> KernelWatch:
        if self._process is not None:
            self._thread = threading.Thread(target=self._sample, name="cptpub-kernel-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _sample(self) -> None:
        assert self._process is not None
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(SAMPLE_SECONDS)

    def cause_of_death(self) -> str:
        """How the kernel ended, in words, e.g. ``killed by SIGKILL while using 1,900 MB of a 2,048 MB memory
        limit: out of memory``."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        status = None
        if process is not None:
            try:
                status = process.wait(timeout=2)
            except Exception:  # still running (it stopped answering) or already reaped
                status = process.poll()
        return describe_exit(status, self.peak_rss, memory_limit())


def describe_exit(status: int | None, peak_rss: int, limit: int | None, *, process: str = "the kernel") -> str:
    """How ``process`` ended (its exit status, or minus the signal that killed it), with its memory use."""
    mb = f"{peak_rss / 2**20:,.0f} MB"
    used = f" while using {mb}" + (f" of a {limit / 2**20:,.0f} MB memory limit" if limit else "") if peak_rss else ""
    if status is None:
        return f"{process} stopped answering (its exit status is unknown)"
    if status >= 0:
        return f"{process} exited with status {status}{used}"
    name = signal.Signals(-status).name if -status in signal.Signals._value2member_map_ else f"signal {-status}"
    if -status == signal.SIGKILL and limit and peak_rss >= NEAR_LIMIT * limit:
        return f"{process} was killed by {name}{used}: it most likely ran out of memory"
    if -status == signal.SIGKILL:
        return f"{process} was killed by {name}{used} (by another process, or by the out-of-memory killer)"
    return f"{process} was killed by {name}{used}"
