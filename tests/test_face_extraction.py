"""`bench data faces`: crops and manifest from a synthetic video and images; the finder on the shared faces."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.data.faces import MANIFEST_COLUMNS, FaceFinder, crop_face, sample_indices
from bench.data.images import load_manifest
from bench.errors import BenchError

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
HAVE_FACES = (FACES / "manifest.csv").is_file()
NO_FACES = f"real face images not found at {FACES} (shared data absent)"


def _face(name: str = "real/s2_") -> np.ndarray:
    """A real face from the shared data, 128 px RGB."""
    path = sorted((FACES / name.split("/")[0]).glob(name.split("/")[1] + "*.png"))[0]
    return np.asarray(Image.open(path).convert("RGB"))


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_sample_indices_spread_evenly():
    assert sample_indices(100, 5) == [0, 25, 50, 74, 99]
    assert sample_indices(3, 32) == [0, 1, 2]
    assert sample_indices(0, 4) == []


def test_crop_is_square_with_margin_and_replicates_edges():
    img = np.zeros((100, 80, 3), dtype=np.uint8)
    img[:, :40] = 200
    crop = crop_face(img, (0, 0, 40, 40), margin=1.5, size=32)
    assert crop.shape == (32, 32, 3)
    assert crop[0, 0, 0] == 200  # outside the frame on the left: the edge column (200) is replicated


@pytest.mark.skipif(not HAVE_FACES, reason=NO_FACES)
def test_data_faces_on_a_video_and_images(tmp_path: Path, capsys):
    face = _face()
    canvas = np.full((192, 192, 3), 90, dtype=np.uint8)
    frames = []
    for i in range(12):
        f = canvas.copy()
        if i < 9:  # a moving face; the last three frames are empty
            f[20 + 4 * i : 148 + 4 * i, 30:158] = face
        frames.append(f)
    src = tmp_path / "src"
    (src / "fake" / "vids").mkdir(parents=True)
    (src / "real").mkdir()
    _write_video(src / "fake" / "vids" / "clip.mp4", frames)
    Image.fromarray(_face("real/s3_")).save(src / "real" / "a.png")
    Image.fromarray(np.full((96, 96, 3), 128, dtype=np.uint8)).save(src / "real" / "blank.jpg")
    out = tmp_path / "out"
    assert main(["data", "faces", str(src), "--out", str(out), "--frames", "6", "--size", "64", "--quiet"]) == 0
    printed = capsys.readouterr().out
    with (out / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
        assert tuple(csv.DictReader((out / "manifest.csv").open()).fieldnames) == MANIFEST_COLUMNS
    video = [r for r in rows if r["source"] == "fake/vids/clip.mp4"]
    assert [int(r["frame"]) for r in video] == [0, 2, 4, 7, 9, 11]  # 6 of 12, evenly
    assert {r["group"] for r in video} == {"fake/vids/clip.mp4"}
    found = {int(r["frame"]): r for r in video if r["status"] == "ok"}
    assert set(found) >= {0, 2, 4, 7}  # frames with the face
    assert {9, 11} <= {int(r["frame"]) for r in video if r["status"] == "no_face"}
    for fr, r in found.items():  # the box's centre lies on the drawn face (128 px, top-left at (30, 20 + 4 i))
        cx, cy = int(r["x"]) + int(r["w"]) / 2, int(r["y"]) + int(r["h"]) / 2
        assert 30 < cx < 158 and 20 + 4 * fr < cy < 148 + 4 * fr and int(r["w"]) > 40
        crop = Image.open(out / r["path"])
        assert crop.size == (64, 64) and r["label"] == "fake"
    image_rows = {r["source"]: r for r in rows if r["frame"] == ""}
    assert image_rows["real/a.png"]["status"] == "ok" and (out / image_rows["real/a.png"]["path"]).is_file()
    assert image_rows["real/blank.jpg"]["status"] == "no_face" and image_rows["real/blank.jpg"]["path"] == ""
    assert "real/blank.jpg" in printed and "fake/vids/clip.mp4 frame 11" in printed
    data, splits = load_manifest(out / "manifest.csv", 32)  # the manifest feeds `bench run`; no_face rows skipped
    assert len(data) == sum(r["status"] == "ok" for r in rows) and splits is None
    assert data.groups is not None and data.groups.count("fake/vids/clip.mp4") == len(found)


def test_data_faces_bad_source_is_refused_before_writing(tmp_path: Path):
    (tmp_path / "src" / "real").mkdir(parents=True)
    with pytest.raises(BenchError, match="missing class folder fake"):
        from bench.data.faces import extract_faces

        extract_faces(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["data", "faces", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2


@pytest.mark.skipif(not HAVE_FACES, reason=NO_FACES)
def test_finder_finds_faces_in_the_shared_images():
    """Acceptance: a face in at least 95% of the shared 128 px face images (per subset too)."""
    finder = FaceFinder()
    with (FACES / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    hits: dict[str, list[bool]] = {}
    for r in rows:
        img = np.asarray(Image.open(FACES / r["file"]).convert("RGB"))
        hits.setdefault(r["subset"], []).append(finder.find(img) is not None)
    total = sum(sum(h) for h in hits.values()) / len(rows)
    rates = {s: sum(h) / len(h) for s, h in hits.items()}
    print(f"face find rate: {total:.1%} of {len(rows)}; per subset {rates}")
    assert total >= 0.95 and min(rates.values()) >= 0.9
