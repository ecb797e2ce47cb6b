"""``hpnb submit`` and ``hpnb status``: a profile's runs as jobs through submitit, on SLURM or this machine.

Plan: every chapter's runs the store lacks, split into the ensembles the executor trains. Execute: one job
array per kind of ensemble, each array task training one ensemble into the store. The store (on a shared
filesystem for a cluster) is the only coordination: its per-run locks, atomic writes and checksums decide
who trains what, so resubmitting trains only what is missing. A task that is preempted or reaches its time
limit is requeued by submitit and resumes its runs from their last checkpoints. A chapter whose later sweeps
depend on results (chapter 2 picks its learning rate) gets a continuation job that plans the next round once
the arrays are done. Each submission is recorded under ``outputs/<profile>/jobs/`` so ``hpnb status`` can show
what is queued, running, done and failed per chapter, with the log of every failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from . import paths, pipeline
from .config import RunConfig
from .ensembles import plan_ensembles
from .loop import ensemble_key
from .registry import ConfigError
from .runner import train_runs
from .store import RunStore

BACKENDS = ("slurm", "local")
LIVE = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "RUNNING",
        "COMPLETING", "STAGE_OUT", "SIGNALING"}
QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED"}
FAILURES = ".failed"  # folder in the store: one note per run whose task raised (error, job, log path)


@dataclass
class JobOptions:
    backend: str = "slurm"
    partition: Optional[str] = None
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    time_min: int = 60
    mem_gb: Optional[float] = None
    gpu_memory_gb: float = 40.0  # what one GPU of the partition holds; sizes ensembles
    max_members: Optional[int] = None

    def check(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"--executor: got {self.backend!r}, expected one of {', '.join(BACKENDS)}")
        for key in ("gpus_per_job", "cpus_per_job", "time_min"):
            value = getattr(self, key)
            if value < (0 if key == "gpus_per_job" else 1):
                raise ConfigError(f"--{key.replace('_', '-').replace('-min', '')}: got {value}, expected a "
                                  f"{'non-negative' if key == 'gpus_per_job' else 'positive'} integer")


# --------------------------------------------------------------------------- what runs inside a job
class TrainTask:
    """One array task: train these runs (one ensemble) into the store. Checkpointable: on preemption or at the
    time limit submitit requeues the task, and the rerun resumes every run from its last stored checkpoint."""

    def __init__(self, configs: list[dict], store: str, environment: dict):
        self.configs, self.store, self.environment = configs, store, environment

    def __call__(self) -> dict:
        os.environ.update(self.environment)
        store = RunStore(self.store)
        outcomes = train_runs([RunConfig.from_dict(c) for c in self.configs], store, progress=False)
        log = _job_log()
        for o in outcomes:
            note = store.root / FAILURES / f"{o.config.hash}.json"
            if o.error:
                note.parent.mkdir(parents=True, exist_ok=True)
                note.write_text(json.dumps({"error": o.error, "traceback": o.trace, "log": log,
                                            "job": os.environ.get("SLURM_JOB_ID", "local")}, indent=1))
            elif note.exists():
                note.unlink()
        failed = [o for o in outcomes if o.error]
        if failed:  # the task fails, so the scheduler shows it; the other runs are in the store already
            raise RuntimeError(f"{len(failed)} of {len(outcomes)} run(s) failed: "
                               + "; ".join(f"{o.config.hash}: {o.error}" for o in failed))
        return {o.config.hash: "reused" if o.cached else "trained" for o in outcomes}

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self)  # the store holds the progress


class Continue:
    """The continuation job: plans the next round once the earlier arrays are over, and submits it."""

    def __init__(self, profile: str, options: JobOptions, root: str, store: str, environment: dict):
        self.profile, self.options, self.root, self.store = profile, options, root, store
        self.environment = environment

    def __call__(self) -> str:
        os.environ.update(self.environment)
        record = submit(self.profile, self.options, Path(self.root), self.store)
        return str(record)


def _job_log() -> str:
    try:
        import submitit

        return str(submitit.JobEnvironment().paths.stderr)
    except Exception:  # not inside a submitit job
        return ""


# --------------------------------------------------------------------------- submitting
def jobs_dir(profile_name: str) -> Path:
    return paths.outputs_dir() / profile_name / "jobs"


_WATCHER_CHECKED = False


def _watch_with_squeue_if_no_accounting() -> None:
    """submitit asks ``sacct`` for job states. A cluster without accounting (slurmdbd) has none, and then a job
    that died without writing its result would be waited for forever; ask ``squeue -t all`` instead, which
    remembers finished jobs for the cluster's MinJobAge."""
    global _WATCHER_CHECKED
    if _WATCHER_CHECKED:
        return
    _WATCHER_CHECKED = True
    if subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True).returncode == 0:
        return
    from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

    class SqueueWatcher(SlurmInfoWatcher):
        def _make_command(self):
            ids = sorted({x.split("_")[0] for x in self._registered - self._finished})
            if not ids:
                return None
            # sacct's header and columns, so submitit's own parser reads it
            return ["sh", "-c", f'echo "JobID|State|NodeList"; squeue -h -r -t all -o "%i|%T|%N" -j {",".join(ids)}']

    SlurmJob.watcher = SqueueWatcher(delay_s=10)


def _executor(options: JobOptions, folder: Path, **extra):
    import submitit

    if options.backend == "slurm":
        _watch_with_squeue_if_no_accounting()
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=options.backend)
    params = {"timeout_min": options.time_min, "cpus_per_task": options.cpus_per_job, "name": "hpnb"}
    if options.backend == "slurm":
        # logs are appended, so a requeued task keeps what its earlier attempts printed
        params.update(gpus_per_node=options.gpus_per_job, slurm_signal_delay_s=min(120, options.time_min * 15),
                      slurm_additional_parameters={"open-mode": "append", **extra.pop("dependency", {})})
        if options.partition:
            params["slurm_partition"] = options.partition
        if options.mem_gb:
            params["mem_gb"] = options.mem_gb
    params.update(extra)
    executor.update_parameters(**params)
    return executor


def _environment() -> dict:
    keep = ("HPNB_DATA", "HPNB_CHECKPOINT_SECONDS", "HPNB_MAX_MEMBERS", "HPNB_CPU_WORKERS", "PYTHONPATH")
    return {k: os.environ[k] for k in keep if k in os.environ} | {"HPNB_PROGRESS": "0"}


def submit(profile: str, options: JobOptions, root: Optional[Path] = None, store=None,
           log: Callable[[str], None] = print) -> Path:
    """Plan what the store lacks and submit it; returns the submission record. With ``slurm`` this returns
    once the jobs are queued; with ``local`` it runs them here, round after round, and returns when done."""
    options.check()
    root = root or paths.project_root()
    name, chapters = pipeline.plan(profile, None, root)
    run_store = RunStore(store) if store is not None else RunStore()
    folder = jobs_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        plans, todo = pipeline.pending(chapters, run_store)
        busy = live_hashes(name)
        chapter_of = {cfg.hash: chapter for chapter, cfgs in todo.items() for cfg in cfgs}
        configs = [cfg for cfgs in todo.values() for cfg in cfgs if cfg.hash not in busy]
        waiting = {ch: w for ch, p in plans.items() for w in [p.waiting] if w}
        ensembles = plan_ensembles(configs, options.max_members, memory=_memory(options))
        record = {"profile": name, "profile_arg": profile, "backend": options.backend, "created": time.time(),
                  "options": asdict(options), "store": str(run_store.root), "tasks": [], "continuation": None}
        if ensembles:
            record["tasks"] = _submit_arrays(ensembles, options, folder, run_store, chapter_of, log)
        if waiting and options.backend == "slurm":
            record["continuation"] = _submit_continuation(profile, options, root, run_store, folder, record, log)
        path = folder / f"submission-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{len(list(folder.glob('submission-*')))}.json"
        path.write_text(json.dumps(record, indent=1))
        log(f"submitted {sum(len(t['hashes']) for t in record['tasks'])} run(s) as {len(record['tasks'])} "
            f"task(s); {len(busy)} already queued or running; record {path}")
        if options.backend == "slurm" or not ensembles or not waiting:
            return path  # local: the tasks ran above; plan the next round if a chapter waits for them


def _memory(options: JobOptions) -> Optional[float]:
    if options.backend == "slurm" and options.gpus_per_job:
        return options.gpu_memory_gb * 2**30
    return options.mem_gb * 2**30 if options.mem_gb else None


def _submit_arrays(ensembles: list[list[RunConfig]], options: JobOptions, folder: Path, store: RunStore,
                   chapter_of: dict, log) -> list[dict]:
    by_kind: dict[str, list[list[RunConfig]]] = {}
    for members in ensembles:
        by_kind.setdefault(ensemble_key(members[0]), []).append(members)
    tasks, environment = [], _environment()
    for kind in by_kind.values():
        executor = _executor(options, folder)
        work = [TrainTask([c.to_dict() for c in members], str(store.root), environment) for members in kind]
        if options.backend == "slurm":
            with executor.batch():  # one job array per kind of ensemble
                jobs = [executor.submit(task) for task in work]
        else:  # this machine: one task after another, so they do not fight over its cores
            jobs = []
            for task in work:
                jobs.append(executor.submit(task))
                jobs[-1].wait()
        for job, members in zip(jobs, kind):
            tasks.append({"job": str(job.job_id), "hashes": [c.hash for c in members],
                          "chapters": sorted({chapter_of[c.hash] for c in members}), "model": members[0].model.name,
                          "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr),
                          "result": str(job.paths.result_pickle)})
        log(f"  {members[0].model.name}: {len(kind)} ensemble task(s) of {', '.join(str(len(m)) for m in kind)} "
            f"run(s), {'array ' + str(jobs[0].job_id).split('_')[0] if options.backend == 'slurm' else 'done here'}")
    return tasks


def _submit_continuation(profile: str, options: JobOptions, root: Path, store: RunStore, folder: Path,
                         record: dict, log) -> Optional[str]:
    arrays = sorted({str(t["job"]).split("_")[0] for t in record["tasks"]})
    extra = {"dependency": {"dependency": "afterany:" + ":".join(arrays)}} if arrays else {}
    small = JobOptions(**{**asdict(options), "gpus_per_job": 0, "cpus_per_job": 1, "time_min": 30})
    executor = _executor(small, folder, **extra)
    job = executor.submit(Continue(str(Path(profile).resolve()) if Path(profile).is_dir() else profile, options,
                                   str(root), str(store.root), _environment()))
    log(f"  continuation job {job.job_id}: plans the next round when {'arrays ' + ', '.join(arrays) if arrays else 'now'}"
        f" {'are' if len(arrays) > 1 else 'is'} over")
    return str(job.job_id)


# --------------------------------------------------------------------------- status
def records(profile_name: str) -> list[dict]:
    out = []
    for path in sorted(jobs_dir(profile_name).glob("submission-*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def scheduler_states(job_ids: list[str]) -> dict[str, str]:
    """State of every SLURM task (``<array>_<task>`` → state) the scheduler still remembers."""
    arrays = sorted({str(j).split("_")[0] for j in job_ids})
    if not arrays:
        return {}
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(arrays)],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)


def live_hashes(profile_name: str) -> set[str]:
    """Runs in tasks the scheduler still has queued or running."""
    tasks = [t for r in records(profile_name) if r["backend"] == "slurm" for t in r["tasks"]]
    states = scheduler_states([t["job"] for t in tasks])
    return {h for t in tasks if states.get(str(t["job"])) in LIVE for h in t["hashes"]}


def status(profile: str, root: Optional[Path] = None, store=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per chapter: runs planned, done, running, queued, failed, not yet submitted, and sweeps waiting for
    results; and one row per failed run with its error and log."""
    root = root or paths.project_root()
    name, chapters = pipeline.plan(profile, None, root)
    run_store = RunStore(store) if store is not None else RunStore()
    recs = records(name)
    tasks = [t for r in recs for t in r["tasks"]]
    states = scheduler_states([t["job"] for r in recs if r["backend"] == "slurm" for t in r["tasks"]]
                              + [r["continuation"] for r in recs if r.get("continuation")])
    upcoming = [r["continuation"] for r in recs if r.get("continuation") and states.get(r["continuation"]) in LIVE]
    task_of = {h: t for t in tasks for h in t["hashes"]}  # the latest task that holds each run
    rows, failed = [], []
    for ch in chapters:
        study_plan = ch.plan(run_store)
        counts = {"done": 0, "running": 0, "queued": 0, "failed": 0, "not submitted": 0, "next round": 0}
        for cfg in study_plan.configs():
            task = task_of.get(cfg.hash)
            state = states.get(str(task["job"])) if task else None
            note = run_store.root / FAILURES / f"{cfg.hash}.json"
            if run_store.load(cfg, quarantine=False) is not None:
                counts["done"] += 1
            elif state in QUEUED:
                counts["queued"] += 1
            elif state in LIVE:
                counts["running"] += 1
            elif note.exists() or (task and (state is not None or Path(task["stderr"]).exists())):
                counts["failed"] += 1
                info = json.loads(note.read_text()) if note.exists() else {
                    "error": f"its task ended ({state or 'state unknown'}) without finishing it", "log": task["stderr"]}
                failed.append({"chapter": ch.name, "run": cfg.hash, "error": info["error"], "log": info["log"]})
            else:
                counts["not submitted"] += 1
        if upcoming:  # a continuation job will submit them
            counts["next round"], counts["not submitted"] = counts["not submitted"], 0
        waits = {}
        for sweep, what in study_plan.waiting.items():
            waits.setdefault(what, []).append(sweep)
        rows.append({"chapter": ch.name, "planned": len(study_plan.configs()), **counts,
                     "waiting": "; ".join(f"{', '.join(s)} wait for {w}" for w, s in waits.items())})
    return pd.DataFrame(rows).set_index("chapter"), pd.DataFrame(failed)


# --------------------------------------------------------------------------- the commands
def add_cluster_parsers(sub) -> None:
    p = sub.add_parser("submit", help="plan a profile and submit its missing runs as jobs (SLURM or this machine)")
    p.add_argument("--profile", default="paper", help="quick | paper | smoke | a folder of parameter files")
    p.add_argument("--executor", default="slurm", choices=BACKENDS)
    p.add_argument("--partition", default=None)
    p.add_argument("--gpus-per-job", type=int, default=0)
    p.add_argument("--cpus-per-job", type=int, default=1)
    p.add_argument("--time", type=int, default=60, help="time limit of a job in minutes (requeued past it)")
    p.add_argument("--mem", type=float, default=None, help="memory per job in GB")
    p.add_argument("--gpu-memory", type=float, default=40.0, help="GB of one GPU (sizes the ensembles)")
    p.add_argument("--max-members", type=int, default=None, help="at most this many runs per ensemble")
    p.set_defaults(func=_submit_command)
    p = sub.add_parser("status", help="what a profile's submitted runs are doing: done, running, queued, failed")
    p.add_argument("--profile", default="paper")
    p.set_defaults(func=_status_command)


def _submit_command(args) -> int:
    options = JobOptions(args.executor, args.partition, args.gpus_per_job, args.cpus_per_job, args.time, args.mem,
                         args.gpu_memory, args.max_members)
    try:
        submit(args.profile, options)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _status_command(args) -> int:
    try:
        table, failed = status(args.profile)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table.to_string())
    for row in failed.itertuples():
        print(f"failed: {row.chapter} run {row.run}: {row.error}\n    log: {row.log}")
    return 0


__all__ = ["submit", "status", "JobOptions", "TrainTask", "Continue", "add_cluster_parsers", "BACKENDS"]
