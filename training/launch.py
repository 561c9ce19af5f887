"""Starting a data-parallel run from `vqpress train ... --nproc N` (what torchrun does): N
processes on this machine, talking over loopback, each running the same training function."""

from __future__ import annotations

import os
import socket
import sys

import torch
import torch.distributed as dist

from vqpress.codec.errors import VQPressError


def launch(fn, *args, nproc: int = 1) -> None:
    """fn(*args) in this process, or in `nproc` ranks of a data-parallel run."""
    if nproc <= 1 or "WORLD_SIZE" in os.environ:  # one process, or torchrun started us
        _run_and_leave(fn, args)
        return
    with socket.socket() as s:  # a free port on loopback for the ranks to meet on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        torch.multiprocessing.spawn(_rank, args=(fn, args, nproc, port), nprocs=nproc)
    except torch.multiprocessing.ProcessRaisedException as e:
        last = str(e).strip().splitlines()[-1]
        raise VQPressError(f"a training process failed: {last}") from None
    except torch.multiprocessing.ProcessExitedException as e:  # killed or aborted, e.g. by gloo
        raise VQPressError(f"a training process died: {str(e).strip()} (its own error is printed above)") from None


def _rank(rank: int, fn, args, nproc: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))  # no oversubscribed cores
    _run_and_leave(fn, args)
    # Done: leave without the interpreter's teardown, where C++ threads that outlive the group
    # (gloo's, the store's) can still abort a finished rank (seen in CI once the group was closed)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run_and_leave(fn, args) -> None:
    """fn(*args), then close the process group it joined: a gloo group left to the interpreter's
    exit can abort the process ("terminate called without an active exception")."""
    try:
        fn(*args)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
