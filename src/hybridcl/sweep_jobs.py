"""Running a sweep's points: in this process (`run_point`), or as jobs through submitit, one per point or, with
`--jobs-per seed`, one per (point, seed):

- `--launcher local --parallel N`: N jobs at once on this machine (submitit's LocalExecutor), each with
  cores / N torch threads: N processes with every core's worth of OpenMP threads each made steps 7-20x slower
  on a shared 2-core machine. This process waits for them.
- `--launcher slurm`: one Slurm job array (submitit's SlurmExecutor), resources from `--slurm key=value`; this
  process submits and returns. A job that Slurm warns before its time limit (USR2) requeues itself (a submitit
  Checkpointable); a job preempted, cancelled or killed continues when it runs again (requeued by Slurm, or
  resubmitted by the same command), restoring its finished stages.

Each job's console (submitit's `<job id>_0_log.out` / `.err`) is in its point's `jobs/` folder, beside its
run.log; a job that fails leaves `jobs/failed*.json` there (its last error line and log) for `--status`.
Points never share a file (each job holds its folder's or its seed's lock; seed jobs write their results file
one at a time), so jobs run in any order. The summary is written by the sweep's process once its local jobs
have ended, and by the Slurm job that finishes the last point (the sweep's `finish`, which each Slurm job
calls after its run).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import submitit

from hybridcl.atomic import write_text
from hybridcl.config import Config
from hybridcl.errors import UserError
from hybridcl.folder_lock import job_id
from hybridcl.logs import RUN_LOG
from hybridcl.settings import SLURM_RESOURCES, ConfigError

logger = logging.getLogger(__name__)

JOBS_DIR = "jobs"
TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default is one day; a point on a slow machine may take longer
POLL_S = 2.0
SLURM_DEFAULTS = {"time": 24 * 60}  # submitit's own default is 5 minutes


@dataclass(frozen=True)
class Job:
    point: str  # the point's name (its folder's)
    config: Config
    folder: Path
    seed: int | None = None  # None: every seed of the point

    @property
    def name(self) -> str:
        return self.point if self.seed is None else f"{self.point} seed {self.seed}"

    @property
    def failure_file(self) -> Path:
        return self.folder / JOBS_DIR / ("failed.json" if self.seed is None else f"failed.seed{self.seed}.json")


# ------------------------------------------------------------------------------------ in a job


def run_point(config: Config, folder: Path, seed: int | None = None) -> None:
    """One point's continual run (or one seed of it), in its held folder, continuing its finished stages."""
    from hybridcl.continual import ContinualRun, run_folder  # torch: only once every point is known to be valid

    with run_folder(config, folder, seed):
        ContinualRun(config, folder, seeds=None if seed is None else [seed]).run()


class PointJob(submitit.helpers.Checkpointable):
    """A job's callable. Checkpointable: when Slurm warns of the end of the job's time (USR2), submitit requeues
    the same call, which continues from the finished stages."""

    def __call__(self, job: Job, threads: int | None, finish: Callable[[], object] | None) -> str | None:
        """Returns the one-line message of an error that is the user's to fix (None when the job finished);
        any other error fails the job, with its traceback in the job's stderr and the point's run.log."""
        import torch

        from hybridcl.logs import console_logging, one_line

        torch.set_num_threads(threads or job_cores())
        job.failure_file.unlink(missing_ok=True)
        link_console(job)
        with console_logging("info"):
            try:
                run_point(job.config, job.folder, job.seed)
            except UserError as error:
                message = one_line(str(error))
                print(f"hybridcl: error: {message}", file=sys.stderr)  # as the command line prints it
                record_failure(job, message)
                return message
            except Exception as error:
                record_failure(job, one_line(f"{type(error).__name__}: {error}"))
                raise
            if finish is not None:
                finish()
        return None


def job_cores() -> int:
    """The cores Slurm gave this job (else those this process may run on)."""
    return int(os.environ.get("SLURM_CPUS_PER_TASK") or 0) or len(os.sched_getaffinity(0))


def link_console(job: Job) -> None:
    """A Slurm array keeps every task's stdout/stderr in the sweep's jobs/ folder: link them into the point's."""
    try:
        paths = submitit.JobEnvironment().paths
    except RuntimeError:  # not in a submitit job
        return
    target = job.folder / JOBS_DIR
    for path in (paths.stdout, paths.stderr):
        if path.parent.resolve() != target.resolve():
            target.mkdir(parents=True, exist_ok=True)
            link = target / path.name
            link.unlink(missing_ok=True)
            link.symlink_to(path.resolve())


def record_failure(job: Job, message: str) -> None:
    """`jobs/failed*.json`: the error, the log to read (the job's stderr, linked into the point's jobs/)."""
    try:
        log = str(job.folder / JOBS_DIR / submitit.JobEnvironment().paths.stderr.name)
    except RuntimeError:  # not in a submitit job
        log = str(job.folder / RUN_LOG)
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    failure = {"error": message, "log": log, "seed": job.seed, "job": job_id(), "at": at}
    write_text(job.failure_file, json.dumps(failure) + "\n")


# ------------------------------------------------------------------------------- local jobs


def threads_per_job(parallel: int) -> int:
    return max(1, len(os.sched_getaffinity(0)) // parallel)


def run_local_jobs(jobs: Sequence[Job], parallel: int) -> None:
    """Run the jobs as local submitit jobs, `parallel` at a time; raise UserError naming every failed one. The
    summary is the caller's to write, once they have all ended."""
    threads = threads_per_job(parallel)
    logger.info(f"{len(jobs)} job(s) on this machine, {parallel} at a time, {threads} torch thread(s) each")
    waiting, running, failed = list(jobs), [], []
    while waiting or running:
        while waiting and len(running) < parallel:
            job = waiting.pop(0)
            executor = submitit.LocalExecutor(folder=job.folder / JOBS_DIR)
            executor.update_parameters(timeout_min=TIMEOUT_MIN)
            running.append((job, executor.submit(PointJob(), job, threads, None)))
            logger.info(f"sweep job {job.name}: started (local job {running[-1][1].job_id})")
        time.sleep(POLL_S)
        for job, handle in [entry for entry in running if entry[1].done()]:
            running.remove((job, handle))
            error = "ended without a result (killed?)" if handle.exception() else handle.result()
            if error is None:
                logger.info(f"sweep job {job.name}: done")
            else:
                failed.append(f"{job.name}: {error} (log {handle.paths.stderr})")
                logger.error(f"sweep job {failed[-1]}")
    if failed:
        raise UserError(f"{len(failed)} of {len(jobs)} sweep job(s) failed; " + "; ".join(failed))


# ------------------------------------------------------------------------------- Slurm jobs


def require_slurm() -> None:
    if shutil.which("sbatch") is None:
        raise UserError(
            "--launcher slurm needs Slurm's sbatch, and there is none on this machine's PATH: submit from a "
            "Slurm login node, or run the points here with --launcher local"
        )


def parse_slurm(texts: Sequence[str]) -> dict:
    """`["partition=gpu", "gpus_per_node=1"]` -> {"partition": "gpu", "gpus_per_node": 1}."""
    resources = {}
    for text in texts:
        key, sep, value = (part.strip() for part in text.partition("="))
        if key not in SLURM_RESOURCES or not sep or not value:
            raise ConfigError(
                f"--slurm {text!r}: give key=value with key one of {', '.join(SLURM_RESOURCES)} "
                "(time in minutes, mem as sbatch takes it, e.g. 32G)"
            )
        kind = SLURM_RESOURCES[key]
        try:
            resources[key] = kind(value)
        except ValueError:
            raise ConfigError(f"--slurm {key}={value}: not a whole number") from None
        if kind is int and resources[key] < 1:
            raise ConfigError(f"--slurm {key}={value}: must be at least 1")
    return resources


def submit_slurm_array(jobs: Sequence[Job], out: Path, resources: dict, finish: Callable[[], object]) -> dict[str, str]:
    """Submit the jobs as one Slurm array; returns job name -> Slurm job id (`<array>_<task>`)."""
    executor = submitit.SlurmExecutor(folder=out / JOBS_DIR)
    executor.update_parameters(job_name=f"hybridcl-{out.name}", **{**SLURM_DEFAULTS, **resources})
    with executor.batch():
        handles = [executor.submit(PointJob(), job, None, finish) for job in jobs]
    return {job.name: handle.job_id for job, handle in zip(jobs, handles)}


def queued_slurm_jobs(job_ids: Sequence[str]) -> set[str]:
    """Which of the job ids Slurm still has pending or running (squeue; none when it cannot tell)."""
    if not job_ids or shutil.which("squeue") is None:
        return set()
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    listing = subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i", f"--jobs={','.join(arrays)}"],
        capture_output=True,
        text=True,
    )
    return set(listing.stdout.split()) & set(job_ids) if listing.returncode == 0 else set()
