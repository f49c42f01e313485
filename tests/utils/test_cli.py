"""pixelclip/utils/cli.py: run_tool's exit statuses, load_config's one-line errors, nearest_keys."""
import difflib
from pathlib import Path

import pytest

from pixelclip.errors import ConfigError
from pixelclip.utils.cli import DEBUG_ENV, load_config, nearest_keys, run_tool

VITB = str(Path(__file__).resolve().parents[2] / "configs" / "pixelclip_vitb.yaml")


def _exit_status(main, argv, capsys):
    with pytest.raises(SystemExit) as info:
        run_tool("t", main, argv)
    return info.value.code, capsys.readouterr().err


def test_run_tool_exit_statuses(capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert _exit_status(lambda: None, ["t"], capsys) == (0, "")
    assert _exit_status(lambda: 3, ["t"], capsys)[0] == 3  # main's own status

    def fails():
        raise ConfigError("wrong", "fix it")

    assert _exit_status(fails, ["t"], capsys) == (1, "[t] wrong — fix it\n")
    monkeypatch.setenv(DEBUG_ENV, "TRUE")  # any case
    with pytest.raises(ConfigError):
        run_tool("t", fails, ["t"])
    monkeypatch.delenv(DEBUG_ENV)
    argv = ["t", "--debug", "x"]
    with pytest.raises(ConfigError):  # --debug right after the program name counts too
        run_tool("t", fails, argv)
    assert argv == ["t", "x"]


def test_load_config_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^config overrides must be KEY VALUE pairs, got an odd number: "):
        load_config(VITB, ["MODEL.PIXELCLIP.EPS", "1.0", "MODEL.PIXELCLIP.MOMENTUM"])
    with pytest.raises(ConfigError, match=r"^config file not found: .*nothing\.yaml"):
        load_config(str(tmp_path / "nothing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("MODEL: [\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML"):
        load_config(str(bad))
    orphan = tmp_path / "orphan.yaml"
    orphan.write_text("_BASE_: missing_base.yaml\n")
    with pytest.raises(ConfigError, match=r"fix its _BASE_ path"):
        load_config(str(orphan))
    cfg = load_config(VITB, ["MODEL.PIXELCLIP.EPS", "1.0"])
    assert cfg.MODEL.PIXELCLIP.EPS == 1.0 and cfg.is_frozen()
    assert not load_config(VITB, freeze=False).is_frozen()


def test_nearest_keys_cutoffs_and_count():
    keys = ["MODEL.PIXELCLIP.SINKHORN_ITERS", "MODEL.PIXELCLIP.MOMENTUM", "SOLVER.MOMENTUM", "A.X1", "A.X2", "A.X3", "A.X4"]
    # a sibling whose last name is 2·8/(8 + 14) ≈ 0.73 similar (difflib's ratio) is found: the cutoff is 0.6
    assert difflib.SequenceMatcher(None, "SINKHORN", "SINKHORN_ITERS").ratio() == pytest.approx(16 / 22)
    assert nearest_keys("MODEL.PIXELCLIP.SINKHORN", keys) == ["MODEL.PIXELCLIP.SINKHORN_ITERS"]
    # the same last name in another section: the first key with it
    assert nearest_keys("MODEL.MOMENTUM", keys) == ["MODEL.PIXELCLIP.MOMENTUM"]
    near = nearest_keys("A.X", keys)  # four siblings equally near: at most n = 3 of them
    assert len(near) == 3 and set(near) < {"A.X1", "A.X2", "A.X3", "A.X4"}
    assert nearest_keys("B.Q", keys) == []
