"""Cross-checks: one attack from several implementations (native, ART, Foolbox, a user's), compared.

- `compare`: running the implementations on the same inputs and comparing them (`crosscheck`, the report);
- `report`: rendering a report as text or markdown;
- `cli`: the `bench crosscheck` command;
- `section`: a suite's `crosscheck:` section, stored in the database and rendered into the leaderboard.
"""

from bench.crosscheck.compare import CrosscheckReport, Tolerances, crosscheck, crosscheck_records

__all__ = ["CrosscheckReport", "Tolerances", "crosscheck", "crosscheck_records"]
