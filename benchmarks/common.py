"""Timing and peak-memory helpers shared by the benchmark scripts (CPU RSS via /proc, CUDA via torch)."""
import json
import os
import platform
import statistics
import time

import torch


def _read_status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _malloc_trim() -> None:
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to hand back
        pass


class PeakMemory:
    """Peak memory of a block beyond what was resident when it started (bytes).

    CPU: hands freed heap memory back to the system first (glibc's ``malloc_trim``, so that memory an earlier
    call freed but the allocator kept cannot hide this block's growth), resets the kernel's peak-RSS mark
    (``/proc/self/clear_refs``) and reads ``VmHWM``; CUDA: torch's peak allocator statistics.
    """

    def __init__(self, device: str):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            _malloc_trim()
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = _read_status("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = _read_status("VmHWM") - self.base


def timed(fn, device: str, repeats: int = 3, warmup: int = 1):
    """(median seconds over ``repeats`` >= 3 timed calls after ``warmup`` untimed ones, peak bytes beyond the
    start of any timed call, last result). The warm-up pays for first-call costs (allocator, kernel
    compilation, caches) so that no method is timed cold."""
    if repeats < 3:
        raise ValueError(f"timed: take the median of at least 3 repeats, got repeats={repeats}")
    for _ in range(warmup):
        fn()
    times, peak, out = [], 0, None
    for _ in range(repeats):
        out = None
        with PeakMemory(device) as mem:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = max(peak, mem.peak)
    return statistics.median(times), peak, out


# operators that read a value of the device back to the host: a GPU stream drains before the host goes on
HOST_READS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::_unique2", "aten::unique_dim",
              "aten::unique_consecutive")


def dispatch_counts(fn) -> dict:
    """One call of ``fn`` under the profiler (CPU activity only, so it counts the same on any device): ``ops``,
    the aten operators the Python code and autograd dispatch (those not called by another aten operator; on a GPU
    each launches a kernel or a few, at a few microseconds of host time each, so a loss made of many small ops is
    bound by them), and ``host_reads``, the operators that wait for a value on the device (``.item()``,
    ``nonzero``, boolean indexing, ``unique``)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return dict(ops=len(top), host_reads=sum(e.name in HOST_READS for e in events))


def machine() -> dict:
    info = dict(python=platform.python_version(), torch=torch.__version__, threads=torch.get_num_threads(),
                cpu=platform.processor() or platform.machine(), cores=os.cpu_count())
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def emit(result: dict, path: str = None) -> None:
    text = json.dumps(result, indent=1)
    print(text)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
