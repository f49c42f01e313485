"""tools/gpu_check.sh on a machine without a GPU: a clear one-line refusal, and its CPU rehearsal (--device cpu
--dry-run: the same code on the tiny CLIP — precision regimes, a one-process gloo group with DDP, train_net.py
then --eval-only on generated data) passing. The GPU run itself is not part of the suite (no GPU here)."""
import os
import subprocess

import pytest
import torch

from tests.tools.run_tool import REPO

SCRIPT = str(REPO / "tools" / "gpu_check.sh")


def _run(*args, timeout=600):
    env = dict(os.environ, PYTHON=os.environ.get("PYTHON", __import__("sys").executable), OMP_NUM_THREADS="1")
    return subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_stops_with_one_line():
    run = _run()
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "[gpu_check] no CUDA device visible to PyTorch — run it on a GPU machine, or rehearse with: "
        "tools/gpu_check.sh --device cpu --dry-run"]


def test_benchmarks_own_guards_stop_with_one_reason():
    from tests.tools.test_benchmark import _benchmark

    bench = _benchmark()
    args = __import__("argparse").Namespace(dry_run=False)
    with pytest.raises(bench.GpuCheckFailed, match="--device cpu is not a GPU: add --dry-run"):
        bench.bench_gpu(args, None, torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(bench.GpuCheckFailed, match="no CUDA device visible to PyTorch"):
            bench.bench_gpu(args, None, torch.device("cuda"))


def test_the_cpu_rehearsal_runs_every_part():
    # float16 autocast is very slow on CPUs (its convolution backward): the rehearsal here takes the other regimes
    run = _run("--device", "cpu", "--dry-run", "--gpu-regimes", "fp32,release,bf16-ckpt")
    assert run.returncode == 0, run.stderr[-2000:]
    table = run.stdout
    for row in ("fp32 (TF32 off)", "release-style", "AMP bf16 + gradient checkpointing", "DDP, one process, gloo",
                "train_net.py --num-gpus 1", "train_net.py --eval-only", "--eval-only mIoU"):
        assert row in table, row
    assert "| NO " not in table
