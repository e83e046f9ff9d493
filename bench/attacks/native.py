"""Native attacks (`backend: native`): batched PyTorch FGSM, CW-L2 and PGD on CPU or CUDA.

Every function has the backend signature `fn(detector, x, y, params) -> x_adv`: `x` float32 NCHW in
[0, 1] (any device), `y` the true labels; returns float32 CPU tensors in [0, 1]. All are untargeted.
The detector is called as a whole (it normalises its [0, 1] input itself).

CW-L2 (eqs. 3-6 of the paper) in detail:

- change of variables x' = (tanh(w) + 1) / 2 (eq. 5); w starts at atanh((2x - 1) * 0.999999), the
  factor keeping atanh finite at pixels 0 and 1 (as in Carlini and Wagner's code, ART and Foolbox);
- objective ||x' - x||_2^2 + c * f(x') (eq. 6), f(x') = max(Z_y - max_{i != y} Z_i, -kappa) on logits
  (eq. 4); for a 2-class detector max_{i != y} Z_i is simply the other logit;
- an iterate is adversarial when the wrong logit leads by at least kappa (f reaches -kappa), as in
  ART and Foolbox; the best (smallest-L2) adversarial per image over all steps is kept, images with
  none return the original x (as ART does);
- c per image is searched in [c_min, c_max] for the smallest value that succeeds: the first step
  tries c_min (success there settles the image: nothing smaller is in range); each later step bisects
  geometrically between the largest failing c and the smallest succeeding one (c_max while none has
  succeeded); an image that has not succeeded by the last step tries c_max itself, and failure at
  c_max settles it (no c in range works). Settled images leave the batch and cost no more compute;
- Adam (beta 0.9/0.999, eps 1e-8) on w, fresh per search step (or, with `step_rule: line_search`, gradient
  descent with a per-image step length found by halving and doubling, as ART's optimiser; `_CWLineSearchStep`);
  with `abort_early` a search step
  ends when the batch's loss has not fallen by 0.01 % over a tenth of `max_iterations`, as in the
  reference code and Foolbox (checked on the loss shifted by the constant c * kappa, which keeps it
  non-negative as there). A per-image test would be cheaper but stops images in the overshoot that
  follows their first success, before the L2 is refined;
- on a GPU, after 3 eager iterations, one iteration is captured as a CUDA graph and replayed (the
  same kernels on the same tensors, without Python or launch overhead; `BENCH_CUDA_GRAPHS=0` turns
  it off). Replayed passes are added to the pass counters, which cannot see them.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch.nn import functional as F

from bench.attacks.counting import add_passes
from bench.attacks.eot import expected_grad, loss_and_grad
from bench.attacks.params import LINE_SEARCH_DOUBLINGS, CWL2Params, FGSMParams, PGDParams
from bench.attacks.registry import register_backend
from bench.attacks.storage import has_host_step
from bench.models.detector import Detector
from bench.settings import cuda_graphs_enabled

NATIVE_BATCH = 256  # images per chunk (bounds memory; CW runs each chunk as one batch)
TANH_SMOOTHER = 0.999999
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
GRAPH_WARMUP = 3  # CUDA: eager iterations before one is captured as a CUDA graph and replayed


def _prepare(detector: Detector, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    detector.eval()
    dev = detector.device
    return x.to(dev, torch.float32), y.to(dev, torch.int64)


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(n, i + NATIVE_BATCH)) for i in range(0, n, NATIVE_BATCH)]


def _loss_grad(detector: Detector, x: torch.Tensor, y: torch.Tensor, eot: int = 1) -> torch.Tensor:
    """Gradient of the summed cross-entropy loss J(x, y) with respect to the [0, 1] input (the mean over `eot`
    passes through a randomized defense, `bench.attacks.eot`)."""
    return loss_and_grad(detector, x, y, eot)[1]


# ---------------------------------------------------------------- FGSM
@register_backend("fgsm", "native", eot=True)
def fgsm(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: FGSMParams) -> torch.Tensor:
    """FGSM, eq. (1): x + eps * sign(grad_x J(x, y)), clipped to [0, 1]."""
    x, y = _prepare(detector, x, y)
    out = []
    for s in _chunks(len(x)):
        grad = _loss_grad(detector, x[s], y[s], p.eot)
        out.append((x[s] + p.eps * grad.sign()).clamp(0.0, 1.0).cpu())
    return torch.cat(out) if out else x.cpu()


# ---------------------------------------------------------------- PGD
def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(p=2, dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def _pgd_start(x0: torch.Tensor, p: PGDParams) -> torch.Tensor:
    if not p.random_start:
        return x0
    if p.norm == "linf":
        r = torch.empty_like(x0).uniform_(-p.eps, p.eps)
    else:  # uniform in the L2 ball: the first d coordinates of a uniform point on the (d+1)-sphere
        n, d = len(x0), x0[0].numel()
        s = torch.randn(n, d + 2, device=x0.device)
        r = (s / s.norm(dim=1, keepdim=True))[:, :d].view_as(x0) * p.eps
    return (x0 + r).clamp(0.0, 1.0)


@register_backend("pgd", "native", eot=True)
def pgd(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: PGDParams) -> torch.Tensor:
    """PGD ascent on the cross-entropy: `steps` steps of `step_size` (sign step for L-inf, unit-L2
    gradient step for L2), each followed by projection onto the eps ball around x and into [0, 1].
    """
    x, y = _prepare(detector, x, y)
    out = []
    for s in _chunks(len(x)):
        x0, ys = x[s], y[s]
        xa = _pgd_start(x0, p)
        for _ in range(p.steps):
            g = _loss_grad(detector, xa, ys, p.eot)
            if p.norm == "linf":
                xa = xa + p.step_size * g.sign()
                xa = x0 + (xa - x0).clamp(-p.eps, p.eps)
            else:
                xa = xa + p.step_size * (g / _flat_norm(g))
                d = xa - x0
                xa = x0 + d * torch.clamp(p.eps / _flat_norm(d), max=1.0)
            xa = xa.clamp(0.0, 1.0)
        out.append(xa.detach().cpu())
    return torch.cat(out) if out else x.cpu()


# ---------------------------------------------------------------- CW-L2
def true_and_other_logits(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z_y, max_{i != y} Z_i) per row."""
    z_true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return z_true, other.max(dim=1).values


class _CWStep:
    """One search step's state for a batch (Adam on w = w0 + delta); each call runs one iteration.

    A call never waits for the device (no host reads), so on CUDA it can be captured once as a CUDA
    graph and replayed: at a batch of 32 at 64 x 64 the iteration is otherwise bound by kernel launches.
    Updates `best_l2` / `best_adv` in place; `found` marks images that reached an adversarial."""

    def __init__(self, detector: Detector, x: torch.Tensor, w0: torch.Tensor, y: torch.Tensor,
                 c: torch.Tensor, p: CWL2Params, best_l2: torch.Tensor, best_adv: torch.Tensor) -> None:
        self.detector, self.x, self.w0, self.y, self.c, self.p = detector, x, w0, y, c, p
        self.best_l2, self.best_adv = best_l2, best_adv
        self.found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.delta = torch.zeros_like(w0)
        self.m = torch.zeros_like(w0)
        self.v = torch.zeros_like(w0)
        self.t = torch.zeros((), dtype=torch.float64, device=x.device)  # Adam's step count
        self.loss = torch.zeros((), device=x.device)

    def __call__(self) -> None:
        p, kappa = self.p, self.p.confidence
        b1, b2 = ADAM_BETAS
        def objective(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            xa = (torch.tanh(w) + 1.0) / 2.0  # eq. (5)
            logits = self.detector(xa)
            z_true, z_other = true_and_other_logits(logits, self.y)
            f = torch.clamp(z_true - z_other, min=-kappa)  # eq. (4)
            l2sq = (xa - self.x).flatten(1).pow(2).sum(dim=1)  # eq. (3)
            return l2sq + self.c * f, logits  # eq. (6), per image (the gradient is of their sum)

        # the gradient (and the logits judging success) are the mean over `eot` passes (`bench.attacks.eot`)
        loss, g, logits = expected_grad(objective, self.w0 + self.delta, p.eot)
        with torch.no_grad():
            xa = (torch.tanh(self.w0 + self.delta) + 1.0) / 2.0
            l2sq = (xa - self.x).flatten(1).pow(2).sum(dim=1)
            z_true, z_other = true_and_other_logits(logits, self.y)
            self.loss.copy_(loss.sum())
            margin = z_other - z_true
            success = margin >= kappa if kappa > 0 else margin > 0
            self.found |= success
            better = success & (l2sq < self.best_l2)
            self.best_l2.copy_(torch.where(better, l2sq, self.best_l2))
            self.best_adv.copy_(torch.where(better.view(-1, 1, 1, 1), xa, self.best_adv))
            # Adam with bias correction
            self.t.add_(1.0)
            self.m.mul_(b1).add_(g, alpha=1 - b1)
            self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
            m_hat = self.m / (1.0 - b1**self.t)
            v_hat = self.v / (1.0 - b2**self.t)
            self.delta.sub_(p.learning_rate * m_hat / (v_hat.sqrt() + ADAM_EPS))


class _CWLineSearchStep:
    """One search step's state for a batch with `step_rule: line_search`: gradient descent on w whose step
    length is chosen per image and per iteration among `step` x 2^k, k = -5..5 (`step` starts at the
    learning rate and carries over as the length last chosen): the candidate with the lowest objective is
    taken if it lowers the objective, else the image stays and its step shrinks 32-fold. Long steps reach
    logit margins that Adam at a small learning rate does not within the iterations (ART's optimiser does
    the same with sequential halving and doubling). Every candidate is a forward pass; an adversarial
    candidate counts like an iterate (the smallest-L2 one is kept). Same interface as `_CWStep`."""

    def __init__(self, detector: Detector, x: torch.Tensor, w0: torch.Tensor, y: torch.Tensor,
                 c: torch.Tensor, p: CWL2Params, best_l2: torch.Tensor, best_adv: torch.Tensor) -> None:
        self.detector, self.x, self.y, self.c, self.p = detector, x, y, c, p
        self.best_l2, self.best_adv = best_l2, best_adv
        self.w = w0.clone()
        self.step = torch.full((len(x),), p.learning_rate, device=x.device)
        self.found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.loss = torch.zeros((), device=x.device)

    def _objective(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-image objective, x', success) at w, recording adversarial points."""
        xa = (torch.tanh(w) + 1.0) / 2.0
        z_true, z_other = true_and_other_logits(self.detector(xa), self.y)
        kappa = self.p.confidence
        l2sq = (xa - self.x).flatten(1).pow(2).sum(dim=1)
        obj = l2sq + self.c * torch.clamp(z_true - z_other, min=-kappa)
        with torch.no_grad():
            margin = z_other - z_true
            success = margin >= kappa if kappa > 0 else margin > 0
            self.found |= success
            better = success & (l2sq < self.best_l2)
            self.best_l2.copy_(torch.where(better, l2sq, self.best_l2))
            self.best_adv.copy_(torch.where(better.view(-1, 1, 1, 1), xa.detach(), self.best_adv))
        return obj, xa, success

    def __call__(self) -> None:
        w = self.w.requires_grad_(True)
        obj, _, _ = self._objective(w)
        (g,) = torch.autograd.grad(obj.sum(), w)
        with torch.no_grad():
            self.loss.copy_(obj.sum())
            best_obj, best_len = obj.detach().clone(), torch.zeros_like(self.step)
            for k in range(-LINE_SEARCH_DOUBLINGS, LINE_SEARCH_DOUBLINGS + 1):
                length = self.step * 2.0**k
                cand, _, _ = self._objective(self.w.detach() - length.view(-1, 1, 1, 1) * g)
                better = cand < best_obj
                best_obj = torch.where(better, cand, best_obj)
                best_len = torch.where(better, length, best_len)
            moved = best_len > 0
            self.w = (self.w.detach() - best_len.view(-1, 1, 1, 1) * g).detach()
            self.step = torch.where(moved, best_len, self.step / 2.0**LINE_SEARCH_DOUBLINGS)


def _use_cuda_graphs(x: torch.Tensor, p: CWL2Params, detector: Detector) -> bool:
    """Replay iterations as a CUDA graph: on a GPU, unless BENCH_CUDA_GRAPHS=0, for long enough runs, through a
    detector whose forward stays on the device (not one behind the suite's storage, whose codec runs on the CPU)."""
    return x.device.type == "cuda" and cuda_graphs_enabled() and p.step_rule == "adam" and (
        p.max_iterations > 2 * GRAPH_WARMUP
    ) and not has_host_step(detector)


def _capture(step: _CWStep) -> torch.cuda.CUDAGraph | None:
    """Capture one iteration as a CUDA graph; None (the attack goes on eagerly) if capture fails."""
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            step()  # recorded, not run
    except RuntimeError as exc:  # pragma: no cover - depends on the CUDA build
        warnings.warn(f"CW-L2: CUDA graph capture failed ({exc}); running eagerly", stacklevel=3)
        graph = None
    finally:  # the capture called the network (its pass counters fired) without computing anything
        add_passes(step.detector, forward=-len(step.x), backward=-len(step.x))
    return graph


def _cw_optimise(
    detector: Detector,
    x: torch.Tensor,
    w0: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    p: CWL2Params,
    best_l2: torch.Tensor,
    best_adv: torch.Tensor,
) -> torch.Tensor:
    """One search step for the given images at their constants `c`: `max_iterations` iterations of
    `_CWStep`, with the early-abort test every tenth of them. On a GPU the first `GRAPH_WARMUP`
    iterations run on a side stream (as CUDA graph capture requires) and the rest replay a graph.

    Updates `best_l2` / `best_adv` in place; returns which images found an adversarial.
    """
    step = (_CWStep if p.step_rule == "adam" else _CWLineSearchStep)(detector, x, w0, y, c, p, best_l2, best_adv)
    check_every = max(1, math.ceil(p.max_iterations / 10))
    shift = float((c * p.confidence).sum())
    graphs = _use_cuda_graphs(x, p, detector)
    side = torch.cuda.Stream(x.device) if graphs else None
    if side is not None:
        side.wait_stream(torch.cuda.current_stream(x.device))
    graph, replays, prev = None, 0, math.inf
    for it in range(p.max_iterations):
        if side is not None and it < GRAPH_WARMUP:
            with torch.cuda.stream(side):
                step()
            torch.cuda.current_stream(x.device).wait_stream(side)
        else:
            if side is not None:  # the first iteration after the warm-up: capture once
                graph, side = _capture(step), None
            if graph is not None:
                graph.replay()
                replays += 1
            else:
                step()
        if p.abort_early and it % check_every == 0:
            # the reference code's test, on the loss shifted by the constant c * kappa (>= 0)
            shifted = float(step.loss) + shift
            if shifted > 0.9999 * prev:
                break
            prev = shifted
    if replays:  # replays run the network without calling it: no hook counted them
        add_passes(detector, forward=replays * len(x), backward=replays * len(x))
    return step.found


def _cw_l2_batch(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: CWL2Params) -> torch.Tensor:
    n = len(x)
    dev = x.device
    w0 = torch.atanh((2.0 * x - 1.0) * TANH_SMOOTHER)
    c = torch.full((n,), p.c_min, device=dev, dtype=torch.float32)
    lo = torch.full((n,), math.nan, device=dev)  # largest c known to fail
    hi = torch.full((n,), math.nan, device=dev)  # smallest c known to succeed
    pending = torch.ones(n, dtype=torch.bool, device=dev)
    best_l2 = torch.full((n,), math.inf, device=dev)
    best_adv = x.clone()
    for step in range(p.binary_search_steps):
        idx = torch.nonzero(pending).flatten()
        if len(idx) == 0:
            break
        b_l2, b_adv = best_l2[idx], best_adv[idx]
        found = _cw_optimise(detector, x[idx], w0[idx], y[idx], c[idx], p, b_l2, b_adv)
        best_l2[idx], best_adv[idx] = b_l2, b_adv
        ci = c[idx]
        hi[idx] = torch.where(found, torch.fmin(hi[idx], ci), hi[idx])
        lo[idx] = torch.where(found, lo[idx], torch.fmax(lo[idx], ci))
        # settled: succeeded at c_min (nothing smaller in range) or failed at c_max (nothing works)
        settled = (found & (ci <= p.c_min)) | (~found & (ci >= p.c_max))
        pending[idx[settled]] = False
        h, never = hi[idx], torch.isnan(hi[idx])
        upper = torch.where(never, torch.full_like(ci, p.c_max), h)
        lower = torch.where(torch.isnan(lo[idx]), torch.full_like(ci, p.c_min), lo[idx])
        nxt = torch.sqrt(lower * upper)  # geometric bisection of [largest failure, smallest success or c_max]
        if step == p.binary_search_steps - 2:  # last step: an image that never succeeded tries c_max
            nxt = torch.where(never, torch.full_like(ci, p.c_max), nxt)
        c[idx] = torch.where(settled, ci, nxt)
    return best_adv


@register_backend("cw_l2", "native", eot=True)
def cw_l2(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: CWL2Params) -> torch.Tensor:
    """Carlini-Wagner L2, eqs. (3)-(6), batched, with a per-image search for c in [c_min, c_max]."""
    x, y = _prepare(detector, x, y)
    return torch.cat([_cw_l2_batch(detector, x[s], y[s], p).cpu() for s in _chunks(len(x))]) if len(x) else x.cpu()

