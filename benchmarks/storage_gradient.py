"""Which gradient to attack JPEG storage with: the storage layer's model against straight-through and kornia's.

Three layers with the same forward (Pillow's JPEG round trip, exactly) and different backwards:

- `layer`: this project's (`bench.attacks.storage.StorageLayer`): straight-through for the roundings, the exact
  derivative of JPEG's linear part (4:2:0 chroma averaging and bilinear upsampling);
- `identity`: straight-through for the whole codec (BPDA with the identity);
- `kornia`: the gradient of kornia's differentiable JPEG (`kornia.enhance.jpeg_codec_differentiable`, Reich et al.
  2024) at the storage's quality.

On the detected held-out fakes of a detector (the tiny CNN of tests/test_storage_aware.py, and ResNet-18 at
32 px trained as in storage_aware_cost.py), for each: the median rise of the real stored image's cross-entropy
after a step of L2 0.5 along the gradient (and how often it beats a random step of the same norm), and how
many fakes FGSM made through the layer turns after storage at eps 4, 8 and 12 / 255, beside FGSM made on the
bare detector (storage-unaware).

    OMP_NUM_THREADS=1 python benchmarks/storage_gradient.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from bench.attacks.delivery import deliver
from bench.attacks.params import FGSMParams
from bench.attacks.registry import run_attack
from bench.attacks.storage import Storage, StorageLayer
from bench.data.dataset import ImageSet
from bench.data.synthetic import generate_synthetic_faces
from bench.defenses.base import as_detector
from bench.models.detector import Detector
from bench.models.registry import create_model
from bench.models.training import Recipe, train_detector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from storage_aware_cost import detector as resnet18_detector  # noqa: E402  (the cost benchmark's cached ResNet-18)


class IdentityLayer(StorageLayer):
    def approximation(self, x: torch.Tensor) -> torch.Tensor:
        return x


class KorniaLayer(StorageLayer):
    def approximation(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.enhance import jpeg_codec_differentiable  # lazy: only this comparison needs kornia

        quality = torch.tensor([float(self.storage.quality or 95)], dtype=x.dtype, device=x.device)
        return jpeg_codec_differentiable(x.clamp(0, 1), quality)


LAYERS = {"layer": StorageLayer, "identity": IdentityLayer, "kornia": KorniaLayer}


def tiny_detector() -> tuple[Detector, ImageSet]:
    images, labels, ids = generate_synthetic_faces(480, 32, 0)
    data = ImageSet.from_uint8(images, labels, ids)
    torch.manual_seed(0)
    det = create_model("tiny", 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    train_detector(det, data.subset(list(range(400))), Recipe(epochs=10, batch_size=16, lr=0.05, step_size=100),
                   quiet=True)
    return det.eval(), data.subset(list(range(400, 480)))


def compare(name: str, det: Detector, held: ImageSet, storage: Storage, n: int) -> None:
    fakes = held.only(0)
    keep = torch.nonzero(det.predict_proba(fakes.images).argmax(1) == fakes.labels).flatten()[:n]
    x, y = fakes.images[keep], fakes.labels[keep]

    def real_loss(img: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.cross_entropy(det(storage.stored(img.clamp(0, 1))), y, reduction="none")

    def fooled(adv: torch.Tensor) -> int:
        stored = storage.store(deliver(adv, x)).float() / 255
        return int((det.predict_proba(stored).argmax(1) != y).sum())

    base = real_loss(x)
    g = torch.Generator().manual_seed(0)
    rand = [torch.randn(x.shape, generator=g) for _ in range(3)]

    def gain(d: torch.Tensor) -> torch.Tensor:
        return real_loss(x + 0.5 * d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)) - base

    rand_best = torch.stack([gain(r) for r in rand]).max(0).values
    print(f"\n{name}: {len(x)} detected fakes, {storage.describe()}")
    print(f"{'gradient':9} {'median loss rise, L2 0.5 step':>30} {'beats 3 random steps':>21} "
          f"{'FGSM turned after storage at eps 4 / 8 / 12 (/255)':>52}")
    eps = (4 / 255, 8 / 255, 12 / 255)
    bare = [fooled(run_attack("fgsm", "native", det, x, y, FGSMParams(eps=e))) for e in eps]
    print(f"{'(bare)':9} {'':>30} {'':>21} {' / '.join(map(str, bare)):>52}   storage-unaware FGSM")
    for label, cls in LAYERS.items():
        through = as_detector(nn.Sequential(cls(storage), det), like=det).eval()
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(through(xg), y, reduction="sum"), xg)
        rise = gain(grad)
        turned = [fooled(run_attack("fgsm", "native", through, x, y, FGSMParams(eps=e))) for e in eps]
        print(f"{label:9} {float(rise.median()):30.4f} {int((rise > rand_best).sum()):>15} of {len(x):<3} "
              f"{' / '.join(map(str, turned)):>52}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quality", type=int, default=95)
    p.add_argument("--n", type=int, default=40, help="detected fakes per detector (at most)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cache", default=os.path.join(os.environ.get("BENCH_CACHE", ".cache/bench"), "benchmarks"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    storage = Storage("jpeg", args.quality)
    compare("tiny CNN (tests/test_storage_aware.py)", *tiny_detector(), storage, args.n)
    ns = argparse.Namespace(train_n=800, n=32, epochs=4, seed=0, cache=args.cache)
    compare("ResNet-18 at 32 px (storage_aware_cost.py)", *resnet18_detector(ns), storage, args.n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
