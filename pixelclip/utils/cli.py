"""What every command-line tool shares: one-line errors, ``--debug``, and config loading.

:func:`run_tool` runs a tool's ``main``: an error of the package's own types
(:class:`~pixelclip.errors.PixelCLIPError`) ends the program with one line on stderr,
``[tool] <what is wrong> — <what to do>``, and exit status 1. ``--debug`` anywhere on the command
line, or ``PIXELCLIP_DEBUG=1``, shows the full traceback instead. Other exceptions are bugs and
keep their traceback.

:func:`load_config` builds a PixelCLIP config from a YAML and ``KEY VALUE`` overrides, turning
Detectron2's ``KeyError`` / assertion for a key that does not exist into a
:class:`~pixelclip.errors.ConfigError` that names the nearest valid keys.
"""
import difflib
import logging
import os
import re
import sys
from typing import Any, Callable, List, Optional, Sequence

from ..errors import ConfigError, PixelCLIPError, one_line

__all__ = ["DEBUG_ENV", "debug_enabled", "run_tool", "WorkerGuard", "report_error", "load_config", "config_keys",
           "nearest_keys"]

DEBUG_ENV = "PIXELCLIP_DEBUG"
_KEY_ERROR = re.compile(r"Non-existent (?:config )?key: ([\w.]+)")


def debug_enabled() -> bool:
    """``--debug`` was given (see :func:`run_tool`) or ``PIXELCLIP_DEBUG`` is set to 1."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def report_error(tool: str, error: BaseException) -> str:
    """Print ``[tool] <message>`` on stderr (and into the run's log files); return the line."""
    line = f"[{tool}] {one_line(error)}"
    print(line, file=sys.stderr, flush=True)
    logger = logging.getLogger("pixelclip")
    for handler in logger.handlers:  # the record of the run (OUTPUT_DIR/log.txt), not the terminal again
        stream = getattr(handler, "stream", None)
        # a log file; not the terminal, nor a stream closed since (a console handler of an earlier in-process run)
        if stream is not None and stream not in (sys.stdout, sys.stderr) and not getattr(stream, "closed", False):
            handler.handle(logger.makeRecord(logger.name, logging.ERROR, __file__, 0, line, None, None))
    return line


def run_tool(tool: str, main: Callable[[], Any], argv: Optional[List[str]] = None) -> None:
    """Run a tool's ``main()`` and exit: 0 after success (or ``main``'s int), 1 with one line for a
    :class:`PixelCLIPError` (or a worker process that stopped on one).

    Arguments:
        tool: the name printed in brackets (``train_net``, ``demo``, ...).
        main: the tool's entry point, reading ``sys.argv`` itself.
        argv: the command line to take ``--debug`` out of (default ``sys.argv``, edited in place).
    """
    argv = sys.argv if argv is None else argv
    if "--debug" in argv[1:]:
        argv.remove("--debug")
        os.environ[DEBUG_ENV] = "1"  # inherited by worker processes
    try:
        result = main()
    except PixelCLIPError as e:
        if debug_enabled():
            raise
        report_error(tool, e)
        sys.exit(1)
    except Exception as e:
        # a worker process (D2's launch, torch.multiprocessing) that printed its own line and exited 1
        if type(e).__name__ == "ProcessExitedException" and getattr(e, "exit_code", None) == 1 and not debug_enabled():
            print(f"[{tool}] a worker process stopped (its message is above) — fix that and run again; "
                  f"{DEBUG_ENV}=1 shows the traceback", file=sys.stderr)
            sys.exit(1)
        raise
    sys.exit(result if isinstance(result, int) else 0)


class WorkerGuard:
    """The function each spawned worker process runs (picklable): a :class:`PixelCLIPError` there
    prints one line and exits 1; D2's ``launch`` then stops the other workers and :func:`run_tool`
    in the launching process exits 1 too.

    Arguments:
        tool: the name printed in brackets.
        main: the worker's function (a module-level function, so that it can be pickled).
    """

    def __init__(self, tool: str, main: Callable[..., Any]):
        self.tool = tool
        self.main = main

    def __call__(self, *args, **kwargs):
        try:
            return self.main(*args, **kwargs)
        except KeyboardInterrupt:  # Ctrl-C reaches every worker: the launching process says what to do
            if debug_enabled():
                raise
            sys.exit(130)
        except PixelCLIPError as e:
            if debug_enabled():
                raise
            from detectron2.utils import comm

            report_error(f"{self.tool}, rank {comm.get_rank()}", e)
            sys.exit(1)


def config_keys(cfg, prefix: str = "") -> List[str]:
    """Every full key of a (yacs / D2) config, e.g. ``MODEL.PIXELCLIP.NUM_PROMPTS``."""
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        if isinstance(v, dict):
            keys += config_keys(v, full + ".")
        else:
            keys.append(full)
    return keys


def nearest_keys(key: str, keys: Sequence[str], n: int = 3) -> List[str]:
    """The valid keys nearest to ``key``: siblings with a similar last name, then keys elsewhere with
    (nearly) the same last name, then keys whose full name is nearly the same."""
    parent, _, last = key.rpartition(".")
    split = {k: k.rpartition(".") for k in keys}
    siblings = {s[2]: k for k, s in split.items() if s[0] == parent}
    near = [siblings[m] for m in difflib.get_close_matches(last, list(siblings), n=n, cutoff=0.6)]
    elsewhere = {}
    for k, s in split.items():
        elsewhere.setdefault(s[2], k)
    near += [elsewhere[m] for m in difflib.get_close_matches(last, list(elsewhere), n=n, cutoff=0.85)]
    near += difflib.get_close_matches(key, keys, n=n, cutoff=0.9)
    return list(dict.fromkeys(near))[:n]


def project_train_net(config_file: str) -> Optional[str]:
    """``projects/<Name>/train_net.py`` when ``config_file`` lies in such a project (whose own keys only
    that script adds), else None."""
    parts = os.path.abspath(config_file).split(os.sep)
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == "projects":
            script = os.sep.join(parts[:i + 2] + ["train_net.py"])
            return os.path.relpath(script) if os.path.isfile(script) else None
    return None


def _unknown_key(cfg, error: BaseException, source: str, config_file: str = "") -> ConfigError:
    m = _KEY_ERROR.search(str(error))
    if not m:
        return ConfigError(f"{source}: {one_line(error).strip(chr(39))}", "check the config keys and values")
    key = m.group(1)
    near = nearest_keys(key, config_keys(cfg))
    action = f"did you mean {' or '.join(near)}?" if near else "see pixelclip/config.py and Detectron2's defaults"
    script = project_train_net(config_file) if config_file else None
    if script and not near:
        action = f"this is a project's config: run it with {script}, which adds the project's keys"
    return ConfigError(f"{source}: config key {key} does not exist", action)


def load_config(config_file: str, opts: Sequence[str] = (), *, freeze: bool = True,
                config_funcs: Sequence[Callable[[Any], None]] = ()):
    """A D2 config with PixelCLIP's keys and recipe (:func:`pixelclip.config.get_pixelclip_cfg`; a
    project's own config functions in ``config_funcs``), ``config_file`` merged, then the ``KEY VALUE``
    overrides.

    Raises:
        ConfigError: a missing or unparsable config file, a key that does not exist (with the
            nearest valid ones), a value of the wrong type or out of range
            (:func:`pixelclip.config.check_pixelclip_values`), an odd number of overrides.
    """
    import yaml

    from ..config import check_pixelclip_values, get_pixelclip_cfg

    cfg = get_pixelclip_cfg(config_funcs=config_funcs)
    if config_file:
        if not os.path.isfile(config_file):
            raise ConfigError(f"config file not found: {config_file}",
                              "give a YAML file, e.g. --config-file configs/pixelclip_vitb.yaml")
        try:
            cfg.merge_from_file(config_file)
        except (KeyError, AssertionError) as e:
            raise _unknown_key(cfg, e, config_file, config_file) from None
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{config_file}: {one_line(e)}", "give the key a value of its type") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{config_file} is not valid YAML ({one_line(e)})", "fix the YAML syntax") from None
        except FileNotFoundError as e:  # a _BASE_ file
            raise ConfigError(f"{config_file}: {one_line(e)}", "fix its _BASE_ path") from None
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"config overrides must be KEY VALUE pairs, got an odd number: {opts}",
                          "give a value for every key (e.g. MODEL.WEIGHTS model_final.pth)")
    try:
        cfg.merge_from_list(opts)
    except (KeyError, AssertionError) as e:
        raise _unknown_key(cfg, e, "command line") from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"command line: {one_line(e)}", "give the key a value of its type") from None
    check_pixelclip_values(cfg, config_file, opts)
    if freeze:
        cfg.freeze()
    return cfg
