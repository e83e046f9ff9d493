"""Results as data: the stored plan of a run and its cells as pandas DataFrames (`query`), and exports."""
