"""Process pools for the phantom work (label-map caches, evaluations) that do not oversubscribe the CPU.

numpy's OpenBLAS starts as many threads as there are cores in every process, and they spin while they wait for
work. Two pool processes on this 2-core machine then run four BLAS threads: building the 2 mm phantom cache took
1.4 s per phantom, 0.8 s with one BLAS thread per process (8 phantoms, two runs each). Each process
does the same arithmetic either way; only the waiting goes.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor


def single_threaded_blas() -> None:
    """Limit this process's BLAS (and OpenMP) pools to one thread; a no-op where threadpoolctl is missing (e.g. a
    Slicer Python without our requirements): slower, not different."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def process_pool(processes: int) -> ProcessPoolExecutor:
    """`processes` worker processes, one BLAS thread each (forked, so scripts need no `__main__` guard)."""
    return ProcessPoolExecutor(processes, initializer=single_threaded_blas)
