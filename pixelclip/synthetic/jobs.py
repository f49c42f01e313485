"""The demo's runs: one ``tools/train_net.py`` subprocess per method and seed, run a few at a time,
each resumable and skipped when its recorded result matches its merged config.

Every run writes ``demo_stage.json`` in its folder: the run's signature (config, overrides, the sha1
of the merged config) and its mIoU once finished; a folder written with other settings is cleared
before its run starts, an unfinished one resumes from its last checkpoint (``--resume``).
"""
import hashlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from ..utils.io import atomic_write

logger = logging.getLogger("synthetic_demo")

# the source checkout that holds tools/train_net.py (the package lives in it)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_json(path: str) -> Optional[dict]:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def summary_miou(run_dir: str, dataset: str) -> Optional[float]:
    """mIoU of ``dataset`` from the summary.json that the trainer's evaluation writes."""
    summary = read_json(os.path.join(run_dir, "summary.json")) or {}
    value = (summary.get(dataset) or {}).get("mIoU")
    return None if value is None else float(value)


def config_hash(config: str, opts: List[str]) -> str:
    """sha1 of the merged config (recipe + file + overrides): what a cached result depends on."""
    from ..config import get_pixelclip_cfg

    cfg = get_pixelclip_cfg(config, opts)
    return hashlib.sha1(cfg.dump().encode()).hexdigest()


class Job:
    """One ``tools/train_net.py`` run (fine-tuning + final evaluation, or evaluation only)."""

    def __init__(self, name: str, config: str, run_dir: str, opts: List[str], eval_only: bool, dataset: str):
        self.name, self.config, self.run_dir, self.opts = name, config, run_dir, list(opts)
        self.eval_only, self.dataset = eval_only, dataset
        self.proc: Optional[subprocess.Popen] = None
        self.started = 0.0
        self.seconds = 0.0

    @property
    def marker(self) -> str:
        return os.path.join(self.run_dir, "demo_stage.json")

    def signature(self) -> dict:
        """What the result depends on: the merged config (files + overrides), so an edited YAML re-runs."""
        return {"config": os.path.relpath(self.config, REPO), "opts": self.opts, "eval_only": self.eval_only,
                "merged_config_sha1": config_hash(self.config, self.opts + ["OUTPUT_DIR", self.run_dir])}

    def done(self) -> bool:
        marker = read_json(self.marker)
        return bool(marker) and marker.get("signature") == self.signature() and marker.get("mIoU") is not None

    def command(self) -> List[str]:
        cmd = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", self.config]
        if self.eval_only:
            cmd.append("--eval-only")
        else:
            cmd.append("--resume")  # continue from the last checkpoint of an interrupted run
        return cmd + self.opts + ["OUTPUT_DIR", self.run_dir]

    def start(self, env: Dict[str, str]) -> None:
        marker = read_json(self.marker)
        if os.path.isdir(self.run_dir) and (not marker or marker.get("signature") != self.signature()):
            # results of other settings (or of unknown origin) must not be resumed from
            logger.info("  %-22s clearing %s (written with other settings)", self.name, self.run_dir)
            shutil.rmtree(self.run_dir)
        os.makedirs(self.run_dir, exist_ok=True)
        atomic_write(self.marker, json.dumps({"signature": self.signature(), "mIoU": None}, indent=1))
        self.started = time.time()
        log = open(os.path.join(self.run_dir, "stdout.log"), "w")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()

    def finish(self) -> float:
        """Check the finished process and record its result; returns the mIoU."""
        self.seconds = time.time() - self.started
        miou = summary_miou(self.run_dir, self.dataset)
        if self.proc.returncode != 0 or miou is None:
            tail = ""
            try:
                with open(os.path.join(self.run_dir, "stdout.log")) as f:
                    tail = "".join(f.readlines()[-25:])
            except OSError:
                pass
            raise RuntimeError(f"run '{self.name}' failed (exit code {self.proc.returncode}); its log is "
                               f"{os.path.join(self.run_dir, 'stdout.log')}; last lines:\n{tail}")
        atomic_write(self.marker, json.dumps({"signature": self.signature(), "mIoU": miou,
                                               "seconds": round(self.seconds, 1)}, indent=1))
        return miou


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished (waited-for) children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_jobs(jobs: Sequence[Job], parallel: int, env: Dict[str, str]) -> None:
    """Run the jobs that are not done, ``parallel`` at a time, logging progress and an ETA."""
    todo = [j for j in jobs if not j.done()]
    for j in jobs:
        if j not in todo:
            logger.info("  %-22s already done (%s), skipped", j.name, j.marker)
    running: List[Job] = []
    finished, t0 = 0, time.time()
    while todo or running:
        while todo and len(running) < parallel:
            job = todo.pop(0)
            logger.info("  %-22s started (log: %s)", job.name, os.path.join(job.run_dir, "stdout.log"))
            job.start(env)
            running.append(job)
        time.sleep(0.5)
        for job in list(running):
            if job.proc.poll() is None:
                continue
            running.remove(job)
            miou = job.finish()
            finished += 1
            left = len(todo) + len(running)
            eta = (time.time() - t0) / finished * left if left else 0  # finished runs' pace, `parallel` at a time
            logger.info("  %-22s mIoU %.2f  (%.0fs; %d left, ETA %.0fs)", job.name, miou, job.seconds, left, eta)
