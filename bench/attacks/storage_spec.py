"""The storage part of a cell's key, without torch: the plan is built and read without it (`bench.suite.plan`).
`bench.attacks.storage` holds the storage itself (the codec and the layer attacks see it through)."""

from __future__ import annotations

from typing import Any


def storage_key(evaluation: Any) -> list:
    """What cell keys hash of a suite's storage (craft cells, the adaptive DIP cells): [format, JPEG quality or
    None], as `bench.attacks.storage.Storage.of(evaluation).key()`."""
    jpeg = evaluation.storage == "jpeg"
    return [evaluation.storage, int(evaluation.jpeg_quality) if jpeg else None]
