"""Many files at once: which files a command was given, where each output goes, and running them
in one process or several, with one line per failure and a closing summary."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from vqpress.codec import limits
from vqpress.codec.errors import VQPressError


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass(frozen=True)
class Done:
    bytes_in: int
    bytes_out: int
    line: str  # what a single-file run prints


def plan(inputs: tuple[Path, ...], output: Path | None, suffix: str,
         listing: Callable[[Path], list[Path]]) -> list[Job]:
    """One job per input file and per file `listing` finds below an input folder. Outputs go
    beside the inputs, or under the folder `output` (keeping each folder's inner layout); a
    single input file may name its output file instead."""
    if len(inputs) == 1 and not inputs[0].is_dir() and not (output and output.is_dir()):
        if not inputs[0].exists():  # said before anything heavy is imported
            raise VQPressError(f"{inputs[0]}: no such file")
        return [Job(inputs[0], output or inputs[0].with_suffix(suffix))]
    if output is not None and output.exists() and not output.is_dir():
        raise VQPressError(f"{output}: with several inputs, -o must be a folder")
    jobs = []
    for item in inputs:
        if item.is_dir():
            found = listing(item)
            jobs += [Job(f, (output / f.relative_to(item) if output else f).with_suffix(suffix)) for f in found]
        else:
            jobs.append(Job(item, (output / item.name if output else item).with_suffix(suffix)))
    if len({j.target.resolve() for j in jobs}) < len(jobs):  # resolved: two spellings of one file
        raise VQPressError("two inputs would write the same output file; give them different names")
    return jobs


def run(jobs: list[Job], work: Callable[[Job], Done], processes: int) -> None:
    """Run `work` on every job; print the single job's line, or for several a progress bar, one
    line per failure and a summary. Exits with status 1 if any job failed."""
    if len(jobs) == 1:
        click.echo(work(jobs[0]).line)
        return
    import concurrent.futures

    from tqdm import tqdm

    done, failed = [], 0
    with tqdm(total=len(jobs), unit="file", desc="files") as bar, _pool(processes) as pool:
        futures = {pool.submit(work, job): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            try:
                done.append(future.result())
            except VQPressError as e:
                failed += 1
                source = str(futures[future].source)
                message = str(e) if str(e).startswith(source) else f"{source}: {e}"
                tqdm.write(f"Error: {message}", file=sys.stderr)
            bar.update(1)
    bytes_in, bytes_out = sum(d.bytes_in for d in done), sum(d.bytes_out for d in done)
    ratio = f" (ratio {bytes_in / bytes_out:.2f}:1)" if bytes_out else ""
    click.echo(f"{len(done)} of {len(jobs)} files done, {failed} failed; {bytes_in} bytes in, "
               f"{bytes_out} bytes out{ratio}")
    if failed:
        raise SystemExit(1)


def _set_limits(max_pixels: int | None, max_side: int | None) -> None:
    limits.MAX_IMAGE_PIXELS, limits.MAX_SIDE = max_pixels, max_side


def _pool(processes: int):
    """Worker processes (spawned: they load the model once each, and share no state), or the
    calling thread alone for --jobs 1."""
    import concurrent.futures
    import multiprocessing

    if processes > 1:  # spawned workers start with the default size limits: pass on --max-pixels
        return concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=_set_limits,
                                                      initargs=(limits.MAX_IMAGE_PIXELS, limits.MAX_SIDE))
    return concurrent.futures.ThreadPoolExecutor(1)
