"""Face extraction: `bench data faces SRC --out DIR` turns videos and images into square face crops.

Sources: a folder with `real/` and `fake/` below it (nested folders allowed), or a CSV with columns
`path` (or `file`) and `label`, optionally `group` and `subset` (or `source`). Videos are decoded with
PyAV and sampled evenly (default 32 frames each); images are used as they are. In each frame the
largest face that OpenCV's Haar cascade finds (the cascades ship in opencv-python-headless: nothing is
downloaded) is cropped as a square of `margin` x its larger side around its centre (edges replicated
where the square leaves the frame) and resized to `size` px. Every frame or image is a row of
`DIR/manifest.csv` (columns in MANIFEST_COLUMNS, documented in the README); those without a face have
status `no_face`, no crop, and are printed; `bench run` skips them.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from bench.data.images import IMAGE_SUFFIXES, LABEL_NAMES, load_image
from bench.errors import BenchError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
MANIFEST_COLUMNS = ("path", "label", "group", "subset", "source", "frame", "x", "y", "w", "h", "status")
# (cascade file, scale factor, min neighbours): tried in order until one finds a face. Measured on the
# 1,034 shared 128 px face crops: alt2 alone finds 97.4%, with the default cascade as fallback more.
CASCADES = (("haarcascade_frontalface_alt2.xml", 1.1, 3), ("haarcascade_frontalface_default.xml", 1.05, 3))


def _cv2():
    try:
        import cv2  # lazy: an optional extra (bench[faces])
    except ImportError as exc:  # pragma: no cover - a dependency of the faces extra
        raise BenchError("bench data faces", "needs OpenCV: pip install 'bench[faces]' (opencv-python-headless<5)") \
            from exc
    if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 dropped the cascade classifier
        raise BenchError("bench data faces", f"OpenCV {cv2.__version__} has no Haar cascades; install "
                         "opencv-python-headless<5")
    return cv2


class FaceFinder:
    """The largest face in an RGB image, by OpenCV's Haar cascades (frontal alt2, then frontal default).

    The image is padded by `pad` x its larger side (edges replicated) before detection, so a face that fills
    a tight crop still has the margin the cascade was trained with; faces smaller than `min_face` x the
    image's shorter side are ignored."""

    def __init__(self, pad: float = 0.25, min_face: float = 0.2) -> None:
        cv2 = _cv2()
        cv2.setNumThreads(1)
        self.cv2 = cv2
        self.pad = pad
        self.min_face = min_face
        self.cascades = []
        for name, scale, neighbours in CASCADES:
            cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
            if cascade.empty():
                raise BenchError("bench data faces", f"cannot load the OpenCV cascade {name}")
            self.cascades.append((cascade, scale, neighbours))

    def find(self, rgb: np.ndarray) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) of the largest face in image coordinates, or None."""
        cv2 = self.cv2
        h, w = rgb.shape[:2]
        p = int(round(self.pad * max(h, w)))
        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        gray = cv2.equalizeHist(cv2.copyMakeBorder(gray, p, p, p, p, cv2.BORDER_REPLICATE))
        side = max(1, int(self.min_face * min(h, w)))
        for cascade, scale, neighbours in self.cascades:
            found = cascade.detectMultiScale(gray, scaleFactor=scale, minNeighbors=neighbours, minSize=(side, side))
            if len(found):
                x, y, bw, bh = max(found, key=lambda b: int(b[2]) * int(b[3]))
                x0, y0 = max(0, int(x) - p), max(0, int(y) - p)
                x1, y1 = min(w, int(x + bw) - p), min(h, int(y + bh) - p)
                if x1 > x0 and y1 > y0:
                    return x0, y0, x1 - x0, y1 - y0
        return None


def crop_face(rgb: np.ndarray, box: tuple[int, int, int, int], margin: float = 1.3, size: int = 128) -> np.ndarray:
    """A square of `margin` x the box's larger side around its centre, edges replicated outside the image,
    resized to `size` x `size` (area-averaged when shrinking, bicubic when enlarging)."""
    x, y, w, h = box
    side = max(1, int(round(margin * max(w, h))))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    ih, iw = rgb.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - iw, y0 + side - ih)
    img = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else rgb
    crop = img[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    resample = Image.Resampling.BOX if side >= size else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), resample))


def sample_indices(n_frames: int, k: int) -> list[int]:
    """`k` frame indices spread evenly over [0, n_frames - 1] (all frames when the video is shorter)."""
    if n_frames <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, n_frames - 1, min(k, n_frames))})


def _av():
    try:
        import av  # lazy: an optional extra (bench[faces]), only for videos
    except ImportError as exc:  # pragma: no cover - a dependency of the faces extra
        raise BenchError("bench data faces", "video decoding needs PyAV: pip install 'bench[faces]'") from exc
    return av


def count_frames(path: Path) -> int:
    """Frames in the first video stream (from the container, else by demuxing every packet)."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


def read_frames(path: Path, k: int) -> list[tuple[int, np.ndarray]]:
    """(index, RGB uint8 frame) for `k` frames sampled evenly from the video."""
    av = _av()
    wanted = set(sample_indices(count_frames(path), k))
    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out.append((i, frame.to_ndarray(format="rgb24")))
            if len(out) == len(wanted):
                break
    return out


@dataclass(frozen=True)
class Source:
    """One input file: its path, label, where it sits below SRC, and its manifest group and subset."""

    path: Path
    label: str
    rel: str
    group: str
    subset: str = ""

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_SUFFIXES


def list_sources(src: Path) -> list[Source]:
    """The videos and images of SRC (a folder with real/ and fake/, or a CSV), checked before anything is
    written."""
    src = Path(src)
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    if src.is_file() and src.suffix.lower() == ".csv":
        return _sources_from_csv(src, suffixes)
    if not src.is_dir():
        raise BenchError(str(src), "expected a folder with real/ and fake/ below it, or a CSV manifest")
    out = []
    for label in ("fake", "real"):
        folder = src / label
        if not folder.is_dir():
            raise BenchError(str(folder), f"missing class folder {label}/ (expected {src}/real and {src}/fake)")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise BenchError(str(folder), f"no videos or images ({', '.join(suffixes)})")
        out += [Source(p, label, p.relative_to(src).as_posix(), p.relative_to(src).as_posix()) for p in files]
    return out


def _sources_from_csv(csv_path: Path, suffixes: tuple[str, ...]) -> list[Source]:
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        path_col = "path" if "path" in cols else "file"
        if path_col not in cols or "label" not in cols:
            raise BenchError(str(csv_path), f"needs columns path (or file),label[,group,subset]; found {cols}")
        rows = list(enumerate(reader, start=2))
    if not rows:
        raise BenchError(str(csv_path), "manifest has no rows")
    subset_col = "subset" if "subset" in cols else ("source" if "source" in cols else None)
    out = []
    for line, row in rows:
        label = LABEL_NAMES.get(str(row["label"]).strip().lower())
        if label is None:
            raise BenchError(f"{csv_path}:{line}", f"label {row['label']!r} is not one of fake, real, 0, 1")
        rel = str(row[path_col]).strip()
        path = csv_path.parent / rel
        if not path.is_file() or path.suffix.lower() not in suffixes:
            raise BenchError(f"{csv_path}:{line}", f"{rel!r} is not an existing video or image ({', '.join(suffixes)})")
        out.append(Source(path, "real" if label == 1 else "fake", rel, str(row.get("group") or "").strip() or rel,
                          str(row.get(subset_col) or "").strip() if subset_col else ""))
    return out


@dataclass
class ExtractionReport:
    rows: list[dict] = field(default_factory=list)
    manifest: Path | None = None

    @property
    def no_face(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != "ok"]


def _frames_of(s: Source, frames: int) -> list[tuple[int | None, np.ndarray]]:
    if s.is_video:
        try:
            out = read_frames(s.path, frames)
        except Exception as exc:  # noqa: BLE001 - PyAV raises its own error types for broken files
            raise BenchError(str(s.path), f"cannot decode video ({exc.__class__.__name__}: {exc})") from exc
        if not out:
            raise BenchError(str(s.path), "video has no frames")
        return out
    try:
        with Image.open(s.path) as im:
            im.load()
            return [(None, np.asarray(im.convert("RGB")))]
    except OSError:
        load_image(s.path, 8)  # raises the loader's own error naming the file
        raise


def extract_faces(src: Path, out: Path, frames: int = 32, margin: float = 1.3, size: int = 128,
                  quiet: bool = False) -> ExtractionReport:
    """Write face crops below `out/real` and `out/fake` and `out/manifest.csv`; see the module docstring."""
    if frames < 1 or margin < 1.0 or size < 8:
        raise BenchError("bench data faces", f"need frames >= 1, margin >= 1 and size >= 8; got frames={frames}, "
                         f"margin={margin}, size={size}")
    sources = list_sources(src)
    finder = FaceFinder()
    out = Path(out)
    report = ExtractionReport()
    for s in tqdm(sources, desc="faces", disable=quiet):
        stem = Path(s.rel).with_suffix("").as_posix()
        if stem.split("/")[0] in ("real", "fake"):
            stem = stem.split("/", 1)[1]
        for index, rgb in _frames_of(s, frames):
            box = finder.find(rgb)
            row = {"path": "", "label": s.label, "group": s.group, "subset": s.subset, "source": s.rel,
                   "frame": "" if index is None else index, "x": "", "y": "", "w": "", "h": "", "status": "no_face"}
            if box is not None:
                name = f"{s.label}/{stem}" + ("" if index is None else f"_f{index:05d}") + ".png"
                dest = out / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop_face(rgb, box, margin, size)).save(dest)
                row.update(path=name, x=box[0], y=box[1], w=box[2], h=box[3], status="ok")
            report.rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    report.manifest = out / "manifest.csv"
    tmp = report.manifest.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(report.rows)
    os.replace(tmp, report.manifest)
    return report


def print_report(args) -> int:
    """`bench data faces`: extract, then print what was written and every frame or image without a face."""
    report = extract_faces(args.src, args.out, frames=args.frames, margin=args.margin, size=args.size,
                           quiet=args.quiet)
    ok = len(report.rows) - len(report.no_face)
    print(f"{ok} face crops from {len(report.rows)} frames/images written to {args.out}; manifest: {report.manifest}")
    if report.no_face:
        print(f"{len(report.no_face)} without a face (listed in the manifest with status no_face):")
        for r in report.no_face:
            print(f"  {r['source']}" + (f" frame {r['frame']}" if r["frame"] != "" else ""))
    return 0
