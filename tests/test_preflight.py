"""pixelclip/preflight.py: held_back_logs keeps Detectron2's dumps off the console until the setup succeeded."""
import io
import logging

import pytest

from pixelclip.preflight import held_back_logs


def _logger_with(console: io.StringIO, log_file: io.StringIO) -> logging.Logger:
    logger = logging.getLogger("detectron2.test_held_back")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler(console))
    logger.addHandler(logging.StreamHandler(log_file))
    return logger


def test_held_back_records_come_after_the_block_or_only_into_files_on_failure(monkeypatch):
    import sys

    console, log_file = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", console)  # the console handler's stream is sys.stdout
    logger = _logger_with(console, log_file)
    seen_inside = []
    with held_back_logs():
        logger.info("config dump")
        seen_inside.append((console.getvalue(), log_file.getvalue()))
    assert seen_inside == [("", "")]
    assert console.getvalue() == log_file.getvalue() == "config dump\n"  # written at the end of the block

    console.truncate(0), console.seek(0), log_file.truncate(0), log_file.seek(0)
    with pytest.raises(RuntimeError), held_back_logs():
        logger.info("model dump")
        raise RuntimeError("a checkpoint of another model")
    assert console.getvalue() == "" and log_file.getvalue() == "model dump\n"
    assert logging.Logger.callHandlers.__name__ == "callHandlers"  # restored


def test_device_weights_and_the_order_of_the_checks(tmp_path, monkeypatch):
    import torch

    import pixelclip.preflight as pf
    from pixelclip.errors import CheckpointError, ConfigError
    from tests.conftest import make_tiny_cfg

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=f"^MODEL.DEVICE is {device} but this machine has no CUDA device"):
            pf.check_device(make_tiny_cfg(**{"MODEL.DEVICE": device}))
    pf.check_device(make_tiny_cfg())  # cpu

    cfg = make_tiny_cfg(**{"OUTPUT_DIR": str(tmp_path), "MODEL.WEIGHTS": str(tmp_path / "missing.pth")})
    for resume in (False, True):  # no last_checkpoint in OUTPUT_DIR: the file must exist, resuming or not
        with pytest.raises(CheckpointError, match="^MODEL.WEIGHTS file not found: "):
            pf.check_model_weights(cfg, resume=resume)
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    pf.check_model_weights(cfg, resume=True)  # --resume loads the last checkpoint instead
    with pytest.raises(CheckpointError):
        pf.check_model_weights(cfg, resume=False)
    pf.check_model_weights(make_tiny_cfg(**{"MODEL.WEIGHTS": "https://example.com/model.pth"}))  # left to Detectron2

    calls = []
    for name in ("check_device", "check_amp", "check_output_dir", "check_model_weights", "check_clip_weights",
                 "check_train_datasets", "check_test_datasets"):
        monkeypatch.setattr(pf, name, lambda *a, _name=name, **k: calls.append(_name))
    pf.preflight(cfg)
    assert calls == ["check_device", "check_amp", "check_output_dir", "check_model_weights", "check_clip_weights",
                     "check_train_datasets", "check_test_datasets"]
    calls.clear()
    pf.preflight(cfg, eval_only=True)  # evaluation neither trains nor autocasts a training step
    assert calls == ["check_device", "check_output_dir", "check_model_weights", "check_clip_weights", "check_test_datasets"]
