"""ART and Foolbox implementations of the registered attacks, called the same way.

Every backend function has the signature `fn(detector, x, y, params) -> x_adv` with `x` float32
NCHW in [0, 1] (CPU or the detector's device), `y` the true labels (int64), and returns float32
CPU tensors in [0, 1]. All attacks are untargeted: they push each image away from its true label.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.attacks.params import APGDParams, CWL2Params, DDNParams, FGSMParams, FMNParams, PGDParams, SquareParams
from bench.attacks.registry import register_backend
from bench.models.detector import Detector
from bench.models.estimators import to_art, to_foolbox

ART_BATCH = 128
# What each toolkit's first call imports: imported before an attack is timed (`bench.attacks.registry.warm_backend`).
ART_IMPORTS = ("art.attacks.evasion", "art.estimators.classification")
FOOLBOX_IMPORTS = ("foolbox",)
# The toolkits' CW-L2: c starts at c_min and grows (ART: per-step line search on c; Foolbox: x10 until success,
# then bisection) with no upper end; step_rule is native only (ART always line-searches, Foolbox always uses Adam).
NO_C_CEILING = "it has no upper end of the c search"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _out(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a), dtype=torch.float32).clamp(
        0.0, 1.0
    )


# ---------------------------------------------------------------- ART
@register_backend("fgsm", "art", imports=ART_IMPORTS)
def art_fgsm(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: FGSMParams) -> torch.Tensor:
    from art.attacks.evasion import FastGradientMethod  # lazy: ART is slow to import

    attack = FastGradientMethod(
        to_art(detector), norm=np.inf, eps=p.eps, eps_step=p.eps, targeted=False,
        num_random_init=0, batch_size=ART_BATCH, minimal=False,
    )
    return _out(attack.generate(_np(x), y=y.cpu().numpy()))


@register_backend("cw_l2", "art", imports=ART_IMPORTS, unused={
    "c_max": NO_C_CEILING, "abort_early": "", "step_rule": "it always line-searches the step"})
def art_cw_l2(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: CWL2Params) -> torch.Tensor:
    """ART's CW-L2 (line search on c per step, doubling/halving); c starts at `c_min`."""
    from art.attacks.evasion import CarliniL2Method  # lazy: ART is slow to import

    attack = CarliniL2Method(
        to_art(detector), confidence=p.confidence, targeted=False, learning_rate=p.learning_rate,
        binary_search_steps=p.binary_search_steps, max_iter=p.max_iterations, initial_const=p.c_min,
        max_halving=5, max_doubling=5, batch_size=len(x), verbose=False,
    )
    return _out(attack.generate(_np(x), y=np.eye(2, dtype=np.float32)[y.cpu().numpy()]))


@register_backend("pgd", "art", imports=ART_IMPORTS)
def art_pgd(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: PGDParams) -> torch.Tensor:
    from art.attacks.evasion import ProjectedGradientDescent  # lazy: ART is slow to import

    attack = ProjectedGradientDescent(
        to_art(detector), norm=np.inf if p.norm == "linf" else 2, eps=p.eps, eps_step=p.step_size,
        max_iter=p.steps, targeted=False, num_random_init=1 if p.random_start else 0,
        batch_size=ART_BATCH, random_eps=False, verbose=False,
    )
    return _out(attack.generate(_np(x), y=y.cpu().numpy()))


# ART 1.20.1's AutoProjectedGradientDescent, read in its source: see the docstring below.
@register_backend("apgd", "art", imports=ART_IMPORTS,
                  unused={"random_start": "it always starts from a random point of the ball"}, behaviour={
    "steps": "returns the last iterate where it is misclassified, else the random start, not the highest-loss "
             "iterate; halves the step where the loss beat the best loss (not the previous iterate) in under 75% of "
             "the steps since the last checkpoint, or where the best loss has not risen since it",
    "restarts": "each restart only on the images still classified correctly, from the previous start plus new noise",
})
def art_apgd(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: APGDParams) -> torch.Tensor:
    """ART's AutoProjectedGradientDescent with loss_type="cross_entropy" (DLR is undefined for two classes).

    What ART 1.20.1 does (read in `art/attacks/evasion/auto_projected_gradient_descent.py`), where it differs
    from the native backend (`bench.attacks.apgd`, Algorithm 1 of Croce and Hein 2020):

    - every restart starts from a random point of the ball (`random_start: false` cannot be honoured); restart
      r > 1 runs only on the images still classified correctly, from the previous start plus new noise;
    - it returns the last iterate where that is misclassified, else the restart's random start: it tracks the
      highest-loss point only to move back to it when halving the step, and does not return it;
    - condition 1 counts the steps whose loss beats the best loss so far (the paper: the previous iterate);
      condition 2 compares the step size with the one set at the last checkpoint, always equal, so it reduces to
      "the best loss has not risen since the last checkpoint"; halving moves back to the best point and its
      predecessor (momentum kept);
    - it stops early only when every loss is exactly 0.

    The effective parameters stored with each craft say so (declared on its `register_backend` above).
    """
    from art.attacks.evasion import AutoProjectedGradientDescent  # lazy: ART is slow to import

    attack = AutoProjectedGradientDescent(
        to_art(detector), norm=np.inf if p.norm == "linf" else 2, eps=p.eps, eps_step=p.step_size * p.eps,
        max_iter=p.steps, targeted=False, nb_random_init=p.restarts, batch_size=ART_BATCH,
        loss_type="cross_entropy", verbose=False,
    )
    return _out(attack.generate(_np(x), y=y.cpu().numpy()))


@register_backend("square", "art", imports=ART_IMPORTS)
def art_square(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: SquareParams) -> torch.Tensor:
    """ART's SquareAttack, L-inf, on its default margin loss (logit of the label minus the highest other).

    ART draws one square position per iteration for the whole batch and queries each robust image three
    times per iteration (prediction, current loss, candidate loss); the pass counter shows it.
    """
    from art.attacks.evasion import SquareAttack  # lazy: ART is slow to import

    attack = SquareAttack(
        to_art(detector), norm=np.inf, adv_criterion=None, loss=None, max_iter=p.queries, eps=p.eps,
        p_init=p.p_init, nb_restarts=p.restarts, batch_size=ART_BATCH, verbose=False,
    )
    return _out(attack.generate(_np(x), y=y.cpu().numpy()))


# ---------------------------------------------------------------- Foolbox
def _fb_run(detector: Detector, attack, x: torch.Tensor, y: torch.Tensor, epsilons) -> torch.Tensor:
    import foolbox as fb  # lazy: only Foolbox backends need it

    fmodel = to_foolbox(detector)
    dev = detector.device
    xs, ys = x.to(dev, torch.float32), y.to(dev)
    _, clipped, _ = attack(fmodel, xs, fb.criteria.Misclassification(ys), epsilons=epsilons)
    adv = clipped[0] if isinstance(clipped, list) else clipped
    return _out(adv.detach())


@register_backend("fgsm", "foolbox", imports=FOOLBOX_IMPORTS)
def foolbox_fgsm(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: FGSMParams) -> torch.Tensor:
    import foolbox as fb  # lazy: only Foolbox backends need it

    return _fb_run(detector, fb.attacks.LinfFastGradientAttack(random_start=False), x, y, [p.eps])


@register_backend("cw_l2", "foolbox", imports=FOOLBOX_IMPORTS,
                  unused={"c_max": NO_C_CEILING, "step_rule": "it always uses Adam"})
def foolbox_cw_l2(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: CWL2Params) -> torch.Tensor:
    """Foolbox's CW-L2 (batched Adam); c starts at `c_min`, x10 until success, then bisects.

    Foolbox returns an all-zero image where it found no adversarial; like ART, we return the
    original image there instead, so a failed attack scores as the unperturbed image.
    """
    import foolbox as fb  # lazy: only Foolbox backends need it

    attack = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=p.binary_search_steps, steps=p.max_iterations, stepsize=p.learning_rate,
        confidence=p.confidence, initial_const=p.c_min, abort_early=p.abort_early,
    )
    adv = _fb_run(detector, attack, x, y, None)
    failed = (adv.flatten(1).abs().sum(1) == 0) & (x.detach().cpu().flatten(1).abs().sum(1) > 0)
    adv[failed] = x.detach().cpu().float()[failed]
    return adv


@register_backend("pgd", "foolbox", imports=FOOLBOX_IMPORTS)
def foolbox_pgd(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: PGDParams) -> torch.Tensor:
    import foolbox as fb  # lazy: only Foolbox backends need it

    cls = fb.attacks.LinfPGD if p.norm == "linf" else fb.attacks.L2PGD
    attack = cls(abs_stepsize=p.step_size, steps=p.steps, random_start=p.random_start)
    return _fb_run(detector, attack, x, y, [p.eps])


@register_backend("fmn", "foolbox", imports=FOOLBOX_IMPORTS)
def foolbox_fmn(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: FMNParams) -> torch.Tensor:
    """Foolbox's L2FMNAttack, started from x (no initial attack, so its boundary search is unused).

    In Foolbox 3.3.4 its L2 projection is a no-op (`L2FMNAttack.project` scales by min(1, norms / norms)), so
    the adaptive radius never constrains the perturbation: it is normalised-gradient descent on the margin
    that keeps the smallest adversarial iterate, and finds larger perturbations than the paper's FMN.
    """
    import foolbox as fb  # lazy: only Foolbox backends need it

    attack = fb.attacks.L2FMNAttack(
        steps=p.steps, max_stepsize=p.max_stepsize, min_stepsize=p.min_stepsize, gamma=p.gamma,
        init_attack=None, binary_search_steps=10,
    )
    return _fb_run(detector, attack, x, y, None)


@register_backend("ddn", "foolbox", imports=FOOLBOX_IMPORTS)
def foolbox_ddn(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: DDNParams) -> torch.Tensor:
    """Foolbox's DDNAttack (no quantisation step; step size cosine-annealed from 1 to 0.01)."""
    import foolbox as fb  # lazy: only Foolbox backends need it

    attack = fb.attacks.DDNAttack(init_epsilon=p.init_epsilon, steps=p.steps, gamma=p.gamma)
    return _fb_run(detector, attack, x, y, None)
