"""Attacks: declarations and parameter models (params, control_params), the registry, and the backends: ART and
Foolbox in toolkits; our own batched ones in native (FGSM, PGD, CW-L2), apgd (APGD-CE), square (Square) and
min_norm (FMN, DDN); the ensemble in ensemble; controls (storage only, random noise) in controls.

Importing the package declares every attack; a backend's module is imported the first time the backend is used
(`bench.attacks.registry.BUILTIN_BACKENDS`), so listing and validating attacks needs neither torch nor the
toolkits."""

from bench.attacks import control_params, params  # noqa: F401  (their declarations)
