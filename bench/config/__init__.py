"""The bottom layer of configuration: what every component's configuration model is built from.

- `types`: the strict scalar types (`Number`, `Integer`, `Boolean`) and the largest count a suite may ask for;
- `strict`: `Strict`, the base of a configuration model that refuses unknown fields;
- `work`: the caps on the work one attack (or DIP) may ask for.

Components (data, models, attacks, DIP, cross-checks, smoothing) declare their own models from these; the
suite's schema (`bench.suite.schema`) composes them. Nothing here imports another part of the package.
"""
