"""The one place that finds the package's data: the Avro schemas and the connector definitions.

Both are top-level folders of the repository (`schemas/`, `connectors/`), where a reader looks for
them and where the local stack and the docs point. The wheel ships them inside the package, as
`streams/schemas` and `streams/connectors` (setup.py maps the folders), so an installed `streams`
finds them without a checkout. A checkout has no such folders inside `streams/`: the lookup falls back
to the repository's own. Nothing is read here; callers read what these paths name, when they need it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.settings import Settings

_CHECKOUT = Path(__file__).resolve().parent.parent


def _shipped(name: str) -> Path:
    """`streams/<name>` as installed from the wheel, else `<checkout>/<name>`."""
    installed = Path(str(files("streams") / name))
    return installed if installed.is_dir() else _CHECKOUT / name


def schemas_dir() -> Path:
    """The Avro schemas (`<name>.avsc`) of the topics the project owns, and their earlier versions in
    `history/`."""
    return _shipped("schemas")


def connectors_dir(settings: Settings) -> Path:
    """The Debezium connector definitions (`<source>.json`) and their document mappings
    (`<source>.mapping.yaml`): STREAMS_CONNECTORS_DIR when set, else the ones the package ships."""
    return settings.connectors_dir if settings.connectors_dir is not None else _shipped("connectors")
