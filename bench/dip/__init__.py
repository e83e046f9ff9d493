"""Deep Image Prior purification (Ulyanov et al. 2018), the paper's defense of section V.

- `config`: `DIPConfig`, every parameter, validated;
- `network`: the DIP "skip" generator, for one image and for N at once;
- `engine`: the batched purification engine, `purify`, and the per-image random streams;
- `readout`: `choose_readout`, the iteration read out when the config says `readout: auto`;
- `preprocessor`: `DIPPreprocessor`, DIP in front of a detector as an ART preprocessor (the `dip` defense);
- `protocol`: the paper's DIP experiment (section V-C) as a suite section: sampling, purifying, scoring;
- `report`: its leaderboard sections (Tables III and IV);
- `figure`: its trajectories figure (Fig. 6).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.dip.config import DIPConfig
    from bench.dip.engine import purify
    from bench.dip.preprocessor import DIPPreprocessor
    from bench.dip.readout import choose_readout

__all__ = ["DIPConfig", "DIPPreprocessor", "choose_readout", "purify"]

# Imported on first use: the engine imports torch and the preprocessor ART, while a suite's `dip:` settings
# (`config`) are checked without either.
_WHERE = {"DIPConfig": "bench.dip.config", "purify": "bench.dip.engine", "choose_readout": "bench.dip.readout",
          "DIPPreprocessor": "bench.dip.preprocessor"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
