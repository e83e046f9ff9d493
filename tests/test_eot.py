"""Expectation over transformation: a randomized defense that plain PGD cannot break and EOT-PGD can.

The defense multiplies each pixel's offset from mid-grey by a random gain: 10 with probability 0.2, -1 with
probability 0.8 (a fresh draw per pass, from the defense's own seeded generator). Behind it sits a linear
detector whose real-minus-fake logit is the mean offset. The expected gain is +1.2, so in expectation the
defended detector follows the offsets; but 4 passes in 5 see the gradient reversed. PGD following one sample's
sign pushes the pixels the wrong way; the mean over 8 samples has the right sign in 83% of the draws.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.attacks.params import FGSMParams, PGDParams
from bench.attacks.registry import run_attack
from bench.defenses.base import WrapperDefense, as_detector
from bench.errors import BenchError
from bench.models.detector import Detector, ModelSpec

SIZE, EPS, SCALE = 8, 0.05, 10.0  # small logits: the loss weighs every sample of the defense alike
BIAS = -0.6 * SCALE * EPS  # clean fakes sit at margin BIAS; an offset of eps everywhere gives 1.2 * SCALE * EPS


class MeanOffset(nn.Module):
    """Logits (0, SCALE * mean(x - 0.5) + BIAS): real when the image is brighter than mid-grey by enough."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        margin = SCALE * (x - 0.5).flatten(1).mean(1) + BIAS
        return torch.stack([torch.zeros_like(margin), margin], dim=1)


class RandomGain(nn.Module):
    def __init__(self, inner: nn.Module, seed: int) -> None:
        super().__init__()
        self.inner = inner
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        draw = torch.rand(x.shape, generator=self.generator).to(x.device)
        gain = torch.where(draw < 0.2, 10.0, -1.0)
        return self.inner(0.5 + gain * (x - 0.5))


class RandomGainDefense(WrapperDefense):
    """Randomized and differentiable: each pass draws new gains from a generator the attack advances."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def wrap(self, detector: Detector) -> Detector:
        return as_detector(RandomGain(detector.net, self.seed), like=detector)


def _defended(seed: int) -> Detector:
    base = Detector(MeanOffset(), ModelSpec(arch="mean-offset", input_size=SIZE, num_classes=2))
    return RandomGainDefense(seed).wrap(base).eval()


def _fooled(det: Detector, x: torch.Tensor, samples: int = 64) -> torch.Tensor:
    """Per image: the defended detector's margin, averaged over `samples` draws of the defense, says real."""
    with torch.no_grad():
        margin = torch.stack([det(x)[:, 1] - det(x)[:, 0] for _ in range(samples)]).mean(0)
    return margin > 0


@pytest.fixture(scope="module")
def fakes():
    g = torch.Generator().manual_seed(3)
    x = 0.5 + (torch.rand(24, 3, SIZE, SIZE, generator=g) - 0.5) * 0.2
    return x, torch.zeros(24, dtype=torch.int64)


def test_eot_pgd_breaks_a_randomized_defense_that_plain_pgd_does_not(fakes):
    x, y = fakes
    assert not bool(_fooled(_defended(99), x).any()), "the clean fakes must be detected"
    rates = {}
    for eot in (1, 8):
        params = PGDParams(eps=EPS, steps=10, step_size=EPS / 4, eot=eot)
        adv = run_attack("pgd", "native", _defended(0), x, y, params)
        assert float((adv - x).abs().max()) <= EPS + 1e-6
        rates[eot] = float(_fooled(_defended(99), adv).float().mean())
    assert rates[8] >= 0.9, rates
    assert rates[1] <= 0.1, rates
    assert rates[8] - rates[1] >= 0.8, rates


def test_eot_is_deterministic_and_one_sample_is_the_plain_gradient(fakes):
    x, y = fakes
    a = run_attack("pgd", "native", _defended(5), x, y, PGDParams(eps=EPS, steps=3, step_size=EPS / 4, eot=4))
    b = run_attack("pgd", "native", _defended(5), x, y, PGDParams(eps=EPS, steps=3, step_size=EPS / 4, eot=4))
    assert torch.equal(a, b)
    assert "eot" not in PGDParams(eot=1).model_dump()  # the default keeps the keys of points stored before EOT
    assert PGDParams(eot=3).model_dump()["eot"] == 3


def test_eot_needs_the_native_backend(fakes):
    x, y = fakes
    with pytest.raises(BenchError, match="eot"):
        run_attack("fgsm", "art", _defended(0), x, y, FGSMParams(eps=EPS, eot=4))
