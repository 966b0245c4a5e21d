"""Running a sweep's points: one in this process (`run_point`), or as jobs (submitit): `hybridcl sweep ...
--launcher local --parallel N` runs N points at once on this machine, each in its own process, through
submitit's LocalExecutor.

Each process gets cores / N torch threads: N processes with every core's worth of OpenMP threads each made
steps 7-20x slower on a shared 2-core machine. Each point keeps its job's stdout and stderr (submitit's
`<job id>_0_log.out` / `.err`, the console of that run) in `<point>/jobs/`, beside its run.log. The points
never share a file (each holds its own folder's lock), so they can run in any order; the summary is written
by the sweep's own process once every point has ended.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hybridcl.errors import UserError

logger = logging.getLogger(__name__)

JOBS_DIR = "jobs"
TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default is one day; a point on a slow machine may take longer
POLL_S = 2.0


def threads_per_job(parallel: int) -> int:
    return max(1, len(os.sched_getaffinity(0)) // parallel)


def run_local_jobs(points: Sequence, out: Path, parallel: int) -> None:
    """Run the points as local submitit jobs, `parallel` at a time; raise UserError naming every failed point."""
    import submitit

    threads = threads_per_job(parallel)
    logger.info(f"{len(points)} point(s) as local jobs, {parallel} at a time, {threads} torch thread(s) each")
    waiting, running, failed = list(points), [], []
    while waiting or running:
        while waiting and len(running) < parallel:
            point = waiting.pop(0)
            executor = submitit.LocalExecutor(folder=out / point.name / JOBS_DIR)
            executor.update_parameters(timeout_min=TIMEOUT_MIN)
            running.append((point, executor.submit(run_job, point.config, out / point.name, threads)))
            logger.info(f"sweep point {point.name}: started (local job {running[-1][1].job_id})")
        time.sleep(POLL_S)
        for point, job in [entry for entry in running if entry[1].done()]:
            running.remove((point, job))
            error = "crashed" if job.exception() else job.result()
            if error is None:
                logger.info(f"sweep point {point.name}: done")
            else:
                failed.append(f"{point.name}: {error} (log {job.paths.stderr})")
                logger.error(f"sweep point {failed[-1]}")
    if failed:
        raise UserError(f"{len(failed)} of {len(points)} sweep point(s) failed; " + "; ".join(failed))


def run_point(config, folder: Path) -> None:
    """One point's continual run, in its held folder (continuing its finished stages)."""
    from hybridcl.continual import ContinualRun, run_folder  # torch: only once every point is known to be valid

    with run_folder(config, folder):
        ContinualRun(config, folder).run()


def run_job(config, folder: Path, threads: int) -> str | None:
    """One point, in a job's process: its threads, its console, then the run (run_point). Returns the
    one-line message of an error that is the user's to fix (None when the point finished); any other error
    fails the job, with its traceback in the job's stderr and the point's run.log."""
    import torch

    from hybridcl.logs import console_logging, one_line

    torch.set_num_threads(threads)
    with console_logging("info"):
        try:
            run_point(config, folder)
        except UserError as error:
            message = one_line(str(error))
            print(f"hybridcl: error: {message}", file=sys.stderr)  # as the command line prints it
            return message
    return None
