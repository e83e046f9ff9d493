"""`CertifyConfig`: the suite's `certify:` section (registered in `bench.smoothing.section`)."""

from __future__ import annotations

from pydantic import Field

from bench.config.strict import Strict
from bench.config.types import MAX_COUNT, Integer, Number


class CertifyConfig(Strict):
    """CERTIFY of Cohen et al. (2019) on every attacked fake, for each variant behind a `smoothing` defense: the top
    class of `n0` selection samples, its probability bounded below from `n` estimation samples at level `alpha`."""

    n0: Integer = Field(100, ge=1, le=MAX_COUNT, description="selection samples per image")
    n: Integer = Field(100_000, ge=1, le=100 * MAX_COUNT, description="estimation samples per image")
    alpha: Number = Field(0.001, gt=0.0, lt=0.5, description="failure probability of each image's certificate")
