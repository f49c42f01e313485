"""pixelclip/launch.py: the process-group backend follows MODEL.DEVICE, not whether the machine has CUDA
(Detectron2's launch picks NCCL whenever torch.cuda.is_available(); here CUDA is pretended present)."""
import socket
from datetime import timedelta

import detectron2.engine
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing
from detectron2.utils import comm

import pixelclip.launch as launch_module


@pytest.fixture
def cuda_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)


def test_backend_follows_the_device(cuda_present):
    assert launch_module.dist_backend("cpu") == "gloo"
    assert launch_module.dist_backend("cuda") == "nccl" and launch_module.dist_backend("cuda:1") == "nccl"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_cpu_run_with_two_processes_starts_gloo_workers_on_a_cuda_machine(cuda_present, monkeypatch):
    started = {}
    monkeypatch.setattr(detectron2.engine, "launch", lambda *a, **k: pytest.fail("D2's launch would pick NCCL"))
    monkeypatch.setattr(torch.multiprocessing, "start_processes",
                        lambda fn, nprocs, args, daemon: started.update(fn=fn, nprocs=nprocs, args=args))
    seen = []
    main = seen.append
    launch_module.launch(main, 2, dist_url="auto", args=("run",), device="cpu")
    assert started["nprocs"] == 2
    fn, (main_func, world, per_machine, machine_rank, url, args, timeout) = started["fn"], started["args"]
    assert (main_func, world, per_machine, machine_rank, args) == (main, 2, 2, 0, ("run",))
    assert url.startswith("tcp://127.0.0.1:")
    # what each worker does, run here as the only process of a world of one (CUDA still "present")
    monkeypatch.setattr(torch.cuda, "set_device", lambda *a: pytest.fail("a CPU worker must not bind a GPU"))
    monkeypatch.setattr(comm, "_LOCAL_PROCESS_GROUP", None)
    try:
        fn(0, main, 1, 1, 0, f"tcp://127.0.0.1:{_free_port()}", ("run",), timedelta(seconds=60))
        assert dist.get_backend() == "gloo" and seen == ["run"]
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_cuda_runs_and_single_processes_go_through_detectron2s_launch(cuda_present, monkeypatch):
    calls = []
    monkeypatch.setattr(detectron2.engine, "launch", lambda *a, **k: calls.append((a[1], k["dist_url"])))
    monkeypatch.setattr(torch.multiprocessing, "start_processes", lambda *a, **k: pytest.fail("not a gloo run"))
    launch_module.launch(print, 2, dist_url="auto", device="cuda")
    launch_module.launch(print, 1, dist_url="auto", device="cpu")
    assert calls == [(2, "auto"), (1, "auto")]


def test_a_gloo_worker_joins_with_its_global_rank(monkeypatch):
    """Worker 1 of machine 1, two workers per machine, 2 machines: global rank 1·2 + 1 = 3 of 4, and a local
    group of 2 (Detectron2's _distributed_worker numbering)."""
    joined = {}
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: joined.update(kw))
    monkeypatch.setattr(comm, "create_local_process_group", lambda n: joined.update(local=n))
    monkeypatch.setattr(comm, "synchronize", lambda: None)
    seen = []
    launch_module._gloo_worker(1, seen.append, 4, 2, 1, "tcp://10.0.0.1:1234", ("run",), timedelta(seconds=5))
    assert (joined["backend"], joined["rank"], joined["world_size"], joined["local"]) == ("gloo", 3, 4, 2)
    assert joined["init_method"] == "tcp://10.0.0.1:1234" and seen == ["run"]


def test_a_cpu_run_on_two_machines_starts_its_own_workers_and_needs_an_address(monkeypatch):
    started = {}
    monkeypatch.setattr(torch.multiprocessing, "start_processes",
                        lambda fn, nprocs, args, daemon: started.update(nprocs=nprocs, args=args))
    launch_module.launch(print, 2, num_machines=2, machine_rank=1, dist_url="tcp://10.0.0.1:1234", device="cpu")
    assert started["nprocs"] == 2 and started["args"][1:5] == (4, 2, 1, "tcp://10.0.0.1:1234")
    with pytest.raises(ValueError, match="dist_url 'auto' works on one machine only"):
        launch_module.launch(print, 2, num_machines=2, dist_url="auto", device="cpu")


def test_the_ctrl_c_line_names_the_resume_command_once_and_only_an_existing_checkpoint(tmp_path):
    from tests.conftest import make_tiny_cfg

    cfg = make_tiny_cfg(**{"OUTPUT_DIR": str(tmp_path)})
    argv = ["tools/train_net.py", "--resume", "--config-file", "a.yaml"]
    (tmp_path / "last_checkpoint").write_text("model_0000099.pth")  # written, but its file is gone
    message = str(launch_module.interrupted(cfg, False, argv))
    assert message.startswith("interrupted (Ctrl-C) before the first checkpoint")
    assert message.endswith("run it again: python tools/train_net.py --resume --config-file a.yaml")
    (tmp_path / "model_0000099.pth").write_bytes(b"x")
    message = str(launch_module.interrupted(cfg, False, argv[:1] + argv[2:]))
    assert message == (f"interrupted (Ctrl-C); the last checkpoint is {tmp_path / 'model_0000099.pth'} — to resume "
                       "from it: python tools/train_net.py --resume --config-file a.yaml")
