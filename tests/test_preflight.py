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
