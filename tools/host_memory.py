"""Peak resident memory of this process, for the benchmarks."""

import resource


def peak_host_memory_mb():
    """This process's peak resident set size in MiB.

    Reads `VmHWM` from /proc/self/status: `getrusage`'s `ru_maxrss` survives
    `execve`, so a benchmark child started by a larger parent would report
    the parent's peak instead of its own. Elsewhere falls back to
    `ru_maxrss` (KiB on Linux).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
