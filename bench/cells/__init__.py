"""The cell lifecycle: every unit of work is a cell kind with a key, dependencies and `compute(cell, ctx)`.

`bench.cells.keys` declares the kinds (each with its version, which its keys hash: `cell_key`);
`bench.cells.registry` maps them to their compute functions; the modules here register the kinds of Tables I
and II (model, clean, gradnorm, craft, attack); optional suite sections register theirs. Each module is
imported the first time its kind is computed (`bench.cells.registry.BUILTIN_KINDS`, `Section.computes`).
`bench.cells.run` runs one cell (seed, compute, store) the same way under every executor.
"""
