"""What a command says and where it goes: its console lines, and the log file of its output folder.

Every module logs through `logging.getLogger(__name__)`, under the `hybridcl` package logger. A command
runs inside `console_logging(level)`: hybridcl's lines print bare, on stdout as they always have (its
warnings on stderr), and warnings of other libraries (and of `warnings.warn`) on stderr as Python shows
them. Inside `log_file(path, header)` every one of those lines, the debug lines of `--log-level debug` and lines
meant for the file alone (`extra=FILE_ONLY`) are also appended to `path` with a timestamp and level,
after a header saying which command started, where and with what. The file closes with why the
command stopped: finished, interrupted, a one-line error, or an unexpected error's full traceback
(`failure_log` then names the file, for the console's one error line).

The file is written once its folder exists: a run creates its folder only after its checks pass, so
lines before that wait in memory, and a run refused at start-up leaves no folder behind. An unexpected
error does create the folder, to keep its traceback.

Under torchrun only the main process (RANK 0) prints lines and writes log files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from hybridcl import __version__
from hybridcl.errors import UserError

RUN_LOG, SWEEP_LOG, BUILD_LOG = "run.log", "sweep.log", "build.log"
LEVELS = {"info": logging.INFO, "debug": logging.DEBUG}
FILE_ONLY = {"console": False}  # extra= of a line for the log file, not the console
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Libraries that print their own log lines and do not pass them on to the root logger.
SELF_PRINTING_LIBRARIES = ("transformers",)

logger = logging.getLogger(__name__)
_LOGGED_AT = "hybridcl_log_file"  # the attribute of an unexpected error that names the log holding its traceback


def is_main_process() -> bool:
    """RANK, not an accelerator: some lines come before one exists. torchrun and accelerate set it."""
    return os.environ.get("RANK", "0") == "0"


# ---------------------------------------------------------------------------------- the console


class _Stripped(logging.Formatter):
    """A warning's text ends in a newline; a line must not leave a blank one after it."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).rstrip()


class _ConsoleLines(logging.Handler):
    """hybridcl's lines, bare, above any progress bar: on stdout, warnings and errors on stderr (the
    streams of the moment: tests swap them)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(_Stripped("%(message)s"))
        self.addFilter(lambda record: getattr(record, "console", True))

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        try:
            tqdm.write(self.format(record), file=stream)
            stream.flush()
        except Exception:
            self.handleError(record)


class _UnhandledWarnings(logging.StreamHandler):
    """What Python prints when no handler is configured (its `lastResort`): warnings and errors of
    loggers without a handler of their own, on stderr. The root logger has handlers now, so this stands
    in for it; loggers with their own handler (hybridcl's, datasets') have printed theirs already."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setLevel(logging.WARNING)
        self.setFormatter(_Stripped("%(message)s"))
        self.addFilter(lambda record: not _handled_below_root(record.name))

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(sys.stderr)
        super().emit(record)


def _handled_below_root(name: str) -> bool:
    """Whether a handler between the logger and the root prints its records; a NullHandler prints nothing
    (`logging.captureWarnings` puts one on `py.warnings`)."""
    found = logging.getLogger(name)
    while found is not None and found is not logging.getLogger():
        if any(not isinstance(handler, logging.NullHandler) for handler in found.handlers):
            return True
        found = found.parent
    return False


@contextlib.contextmanager
def console_logging(level: str = "info") -> Iterator[None]:
    """A command's console; `level` "debug" lets debug lines through to its log files."""
    if not is_main_process():
        yield
        return
    package, root = logging.getLogger("hybridcl"), logging.getLogger()
    lines, unhandled = _ConsoleLines(), _UnhandledWarnings()
    saved_level = package.level
    package.setLevel(LEVELS[level])
    package.addHandler(lines)
    root.addHandler(unhandled)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(unhandled)
        package.removeHandler(lines)
        package.setLevel(saved_level)


# --------------------------------------------------------------------------------- the log file


class _LogFile(logging.Handler):
    """Appends to `path` once its folder exists; until then the records wait. Attached to the root logger
    and to the libraries that do not pass their lines on to it, so a record may arrive twice: once is kept."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.DEBUG)
        self.path = path
        self.setFormatter(_Stripped(FILE_FORMAT))
        self._stream = None
        self._waiting: list[logging.LogRecord] = []
        self._last: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record is self._last or getattr(record, "log_file", self) is not self:
            return  # seen already, or one of another log file's own lines (its header, its end)
        self._last = record
        self._waiting.append(record)
        if self._stream is None and self.path.parent.is_dir():
            self.open()
        if self._stream is not None:
            self._write_waiting()

    def open(self) -> None:
        if self._stream is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(self.path, "a", encoding="utf-8")

    def _write_waiting(self) -> None:
        try:
            self._stream.write("".join(self.format(record) + "\n" for record in self._waiting))
            self._stream.flush()
        except Exception:
            self.handleError(self._waiting[-1])
        self._waiting = []

    def close(self) -> None:
        if self._stream is not None:
            self._write_waiting()
            self._stream.close()
            self._stream = None
        super().close()


@contextlib.contextmanager
def log_file(path: str | os.PathLike, header: dict[str, str] | None = None) -> Iterator[None]:
    """Append this block's lines to `path`, after a header (`start_header()` plus `header`), and at the
    end why the block stopped. Nests: a sweep's log gets every line of its points' logs as well."""
    path = Path(path)
    if not is_main_process():
        yield
        return
    handler = _LogFile(path)
    package = logging.getLogger("hybridcl")
    saved_level = package.level
    if package.getEffectiveLevel() > logging.INFO:  # no console_logging around: still every line in the file
        package.setLevel(logging.INFO)
    libraries = [logging.getLogger(name) for name in SELF_PRINTING_LIBRARIES]
    for attached in (logging.getLogger(), *libraries):
        attached.addHandler(handler)
    own = {**FILE_ONLY, "log_file": handler}
    for key, value in {**start_header(), **(header or {})}.items():
        logger.info("%s: %s", key, value, extra=own)
    start = time.perf_counter()
    try:
        yield
    except BaseException as error:
        _log_stop(error, handler, own)
        raise
    else:
        logger.info("finished in %s", duration(time.perf_counter() - start), extra=own)
    finally:
        for attached in (logging.getLogger(), *libraries):
            attached.removeHandler(handler)
        handler.close()
        package.setLevel(saved_level)


def _log_stop(error: BaseException, handler: _LogFile, own: dict) -> None:
    if isinstance(error, KeyboardInterrupt):
        logger.warning("stopped: interrupted", extra=own)
    elif isinstance(error, UserError):
        logger.error("stopped: %s", one_line(str(error)), extra=own)
    elif isinstance(error, Exception):
        try:
            handler.open()  # the folder may not exist yet: the traceback is worth creating it
        except OSError:
            return  # nowhere to keep it: Python prints the traceback
        logger.error("stopped by an unexpected error", exc_info=error, extra=own)
        if failure_log(error) is None:  # the innermost of nested logs names it
            with contextlib.suppress(AttributeError):  # an error class without attributes: no name, a traceback
                setattr(error, _LOGGED_AT, handler.path)
    else:
        logger.warning("stopped: %s", type(error).__name__, extra=own)


def failure_log(error: BaseException) -> Path | None:
    """The log file holding `error`'s traceback, when a `log_file` block recorded it."""
    return getattr(error, _LOGGED_AT, None)


# ------------------------------------------------------------------------------------ the header


def start_header() -> dict[str, str]:
    """Which command started, which code, on which machine."""
    import torch  # a header is written where torch is loaded anyway

    return {
        "start": shlex.join(sys.argv),
        "hybridcl": f"{__version__} (Python {platform.python_version()}, torch {torch.__version__})",
        "host": f"{socket.gethostname()} ({platform.platform()}), pid {os.getpid()}, in {os.getcwd()}",
        "devices": devices(),
    }


def devices() -> str:
    import torch

    cpu = f"CPU {cpu_model()} ({os.cpu_count()} threads, torch uses {torch.get_num_threads()})"
    if not torch.cuda.is_available():
        return f"{cpu}; no CUDA device"
    gpus = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    return f"{cpu}; CUDA {torch.version.cuda}: " + ", ".join(f"{index}: {name}" for index, name in enumerate(gpus))


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def text_digest(text: str) -> str:
    """The short sha256 of a file's text as written (UTF-8), as the header names a run's config.yaml."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------------------- helpers


def one_line(message: str) -> str:
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def duration(seconds: float) -> str:
    """`0.42 s`, `42 s`, `1 min 19 s`, `2 h 3 min`."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    return f"{minutes // 60} h {minutes % 60} min"
