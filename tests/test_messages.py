"""Messages name the file they are about and tell a permission problem from a full disk (issue 24)."""

from __future__ import annotations

import contextlib
import errno
import io
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest

import bench.results.query as query
from bench.cli import main
from bench.data.images import MAX_PIXELS, load_image
from bench.errors import BenchError
from bench.results.atomic import atomic_write
from bench.running.faults import environment_error


def bench(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


@pytest.mark.parametrize("code, kind", [(errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "the disk is full"),
                                        (errno.EACCES, "you may not write there"),
                                        (errno.EROFS, "you may not write there")])
def test_a_failed_write_names_the_target_and_says_why(tmp_path, code, kind):
    target = tmp_path / "leaderboard" / "t.md"

    def write(fh) -> None:
        raise OSError(code, "the device said no", fh.name)  # as a full disk fails the temporary file's write

    with pytest.raises(OSError) as exc:
        atomic_write(target, write)
    err = environment_error(exc.value)
    assert err is not None and err.where == str(target), err
    assert kind in err.message and ".tmp" not in str(err)
    assert list((tmp_path / "leaderboard").iterdir()) == []  # no temporary file left


def test_sqlite_faults_say_whether_permission_or_space(tmp_path):
    full = environment_error(sqlite3.OperationalError("database or disk is full"), tmp_path / "r.sqlite")
    ro = environment_error(sqlite3.OperationalError("attempt to write a readonly database"), tmp_path / "r.sqlite")
    assert "the disk is full" in full.message and "you may not write there" in ro.message
    assert full.where == ro.where == str(tmp_path / "r.sqlite")


def test_a_folder_is_not_reported_as_missing(tmp_path):
    (tmp_path / "suite.yaml").mkdir()
    code, err = bench("validate", str(tmp_path / "suite.yaml"))
    assert code == 2 and "suite.yaml: is a folder, not a suite file" in err, err
    (tmp_path / "weights.pt").mkdir()
    (tmp_path / "s.yaml").write_text("name: s\ndata: {source: synthetic-faces, n: 40, size: 32}\n"
                                     "models:\n  a: {arch: tiny, checkpoint: weights.pt}\n")
    code, err = bench("validate", str(tmp_path / "s.yaml"))
    assert code == 2 and "weights.pt is a folder, not a checkpoint file" in err, err


def _png_header_only(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [8_500, 20_000])  # above our limit; above PIL's own (89 Mpx) too
def test_the_pixel_limit_quoted_is_the_documented_one(tmp_path, side):
    _png_header_only(tmp_path / "big.png", side, side)
    with pytest.raises(BenchError) as exc:
        load_image(tmp_path / "big.png", 32)
    assert f"{MAX_PIXELS:,}" in exc.value.message and "89" not in exc.value.message
    assert f"{MAX_PIXELS // 1_000_000} megapixels" in (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_export_to_a_folder_is_refused_naming_it(tmp_path):
    db = tmp_path / "tiny.sqlite"
    db.write_bytes((Path(__file__).parent / "expected" / "tiny.sqlite").read_bytes())
    (tmp_path / "out.csv").mkdir()
    code, err = bench("export", "tiny", "--db", str(db), "--out", str(tmp_path / "out.csv"))
    assert code == 2 and f"{tmp_path / 'out.csv'}: is a folder" in err and err.count("\n") == 1, err
    code, err = bench("export", "tiny", "--db", str(db), "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err, err


def test_a_sealed_run_this_bench_cannot_read_is_another_version_not_damage(tmp_path, monkeypatch):
    db = tmp_path / "tiny.sqlite"
    db.write_bytes((Path(__file__).parent / "expected" / "tiny.sqlite").read_bytes())
    assert bench("export", "tiny", "--db", str(db), "--out", str(tmp_path / "ok.csv"))[0] == 0
    def newer(d):  # what pydantic says of a suite field this version does not know
        raise ValueError("1 validation error for Suite\nsections\n  Extra inputs are not permitted")

    monkeypatch.setattr(query.LoadedSuite, "from_dict", staticmethod(newer))
    code, err = bench("export", "tiny", "--db", str(db), "--out", str(tmp_path / "out.csv"))
    assert code == 2 and err.count("\n") == 1, err
    assert "stored by another version of bench" in err and "damaged" not in err and str(db) in err, err
    assert not (tmp_path / "out.csv").exists()
