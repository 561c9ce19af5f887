"""The codec's numpy work on several cores: chunks of independent work (positions of the
prior's map, bands of blocks) run through a thread pool's `map`, numpy releasing the GIL in
their products and element-wise loops, each thread with one BLAS thread.

Why not BLAS's own threads: the prior's products are small (hundreds of rows at most), where
BLAS threads cost more than they give (measured: 0.8 ms for one product on one thread, 3.8 ms
on two; a 768x512 map's prior features in 43 ms on one, 51 ms on two, 27-29 ms as chunks on a
two-thread pool).
"""

from __future__ import annotations

import os

MAX_WORKERS = 4  # the default pool's ceiling: each worker holds one chunk's temporaries


def workers(threads: int) -> int:
    """Threads of a codec's pool: `threads`, or with 0 the CPUs this process may run on, at
    most MAX_WORKERS."""
    if threads:
        return threads
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return min(available, MAX_WORKERS)


def one_blas_thread():
    """A context in which BLAS runs on one thread (threadpoolctl: for the whole process)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def run_all(map, fn, *items) -> None:
    """fn over items through `map` (a pool's submits them all at once); returns once every
    call has finished, raising the first error."""
    for _ in map(fn, *items):
        pass
