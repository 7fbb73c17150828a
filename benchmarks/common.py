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


class PeakMemory:
    """Peak memory of a block beyond what was resident when it started (bytes).

    CPU: resets the kernel's peak-RSS mark (``/proc/self/clear_refs``) and reads ``VmHWM``; CUDA: torch's
    peak allocator statistics.
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
