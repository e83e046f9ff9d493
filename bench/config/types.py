"""Strict scalar types for suite fields: a boolean is not a number, a string is not a number, infinities are refused.

YAML turns `true` into a boolean and `.inf` into infinity; pydantic's lax mode would read `eps: true` as 1.0.
These annotated types keep every number in a suite an actual, finite number (an integer is accepted where a
float is expected).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AllowInfNan, Strict

Number = Annotated[float, Strict(), AllowInfNan(False)]
Integer = Annotated[int, Strict()]
Boolean = Annotated[bool, Strict()]

MAX_COUNT = 1_000_000  # images, batch sizes, steps: anything larger is a typo on this harness
