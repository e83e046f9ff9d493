"""Keeping results: the SQLite store and what it checks (`store`, `integrity`, `atomic` writes, `digests`,
`provenance`, `merge`), the metrics with their intervals (`metrics`, `subset_metrics`), and results as data: the
stored plan of a run and its cells as pandas DataFrames (`query`), and exports (`export`)."""
