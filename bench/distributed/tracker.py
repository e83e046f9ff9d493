"""Where each cell runs: tasks report their start to a small actor the driver reads for its progress bar.

This module imports Ray alone (not torch), so the actor's process stays small.
"""

from __future__ import annotations

import ray


class StartTracker:
    """Every start of every cell (a cell started twice was retried after its worker died): key -> node ids."""

    def __init__(self) -> None:
        self.starts: dict[str, list[str]] = {}

    def started(self, key: str, node_id: str) -> None:
        self.starts.setdefault(key, []).append(node_id)

    def snapshot(self) -> dict[str, list[str]]:
        return self.starts


def start_tracker() -> ray.actor.ActorHandle:
    """The tracker actor (no CPU reserved: it only records)."""
    return ray.remote(num_cpus=0)(StartTracker).remote()
