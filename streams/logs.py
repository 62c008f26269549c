"""One log format for the worker and every command: `STREAMS_LOG_FORMAT=text` (the default) or `json`.

faust replaces the root logger's handlers when its worker starts (with its own coloured format), so
`streams worker` hands it `logging_config(...)` and the commands install the same configuration:
one process, one format. json is one object per line, for a log shipper: time (ISO 8601, UTC), level,
logger, message, and the traceback as `exception` when there is one (python-json-logger).
"""

from __future__ import annotations

import logging.config
from typing import Any, Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logging_config(log_format: LogFormat, level: int | str = logging.INFO) -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration: one handler on stderr, so that a command's own
    output on stdout (a table, `--json`) stays clean."""
    formatter: dict[str, Any] = {"format": TEXT_FORMAT}
    if log_format == "json":
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger", "exc_info": "exception"},
            "timestamp": "time",
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"streams": formatter},
        "handlers": {
            "streams": {"class": "logging.StreamHandler", "formatter": "streams", "stream": "ext://sys.stderr"}
        },
        "root": {"level": level, "handlers": ["streams"]},
    }


def configure_logging(log_format: LogFormat, level: int | str = logging.INFO) -> None:
    logging.config.dictConfig(logging_config(log_format, level))
