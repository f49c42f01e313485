"""Run a repository command-line tool in a subprocess, offline, with a datasets root."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]


def run_tool(script: str, args: Sequence[str], datasets_root: Path, timeout: int = 600,
             threads: Optional[int] = None) -> subprocess.CompletedProcess:
    """``python <script> <args>`` from the repository root with ``$DETECTRON2_DATASETS`` =
    ``datasets_root`` and no network; ``threads`` caps OpenMP threads (e.g. per DDP process)."""
    env = dict(os.environ, DETECTRON2_DATASETS=str(datasets_root), HF_HUB_OFFLINE="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.run([sys.executable, str(REPO / script), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
