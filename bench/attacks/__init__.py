"""Attacks: declarations and parameter models (params), the registry, and the backends that register
themselves on import: ART and Foolbox in toolkits; our own batched ones in native (FGSM, PGD, CW-L2),
apgd (APGD-CE), square (Square) and min_norm (FMN, DDN); the ensemble in ensemble;
controls (storage only, random noise) in controls."""

from bench.attacks import apgd, controls, ensemble, min_norm, native, params, square, toolkits  # noqa: F401  (their registrations)
