"""A small batched Levenberg-Marquardt solver with a finite-difference Jacobian.

The fit is a nonlinear least-squares problem of ~70 parameters and a few hundred to a few thousand
residuals, badly conditioned along kinematic chains: first-order methods (Adam, ~100+ steps) crawl, while
Gauss-Newton steps converge in ~10-20. The Jacobian comes from one batched evaluation of the residuals at
``P + 1`` points per candidate (forward differences in float64), which is cheap because the residual
function evaluates the body on ~100-1000 points only.
"""

from __future__ import annotations

from typing import Callable

import torch

ResidualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""residual_fn(x (N, P), owner (N,) index of each row's candidate) -> residuals (N, R)."""


def residuals_and_jacobian(residual_fn: ResidualFn, x: torch.Tensor, owner: torch.Tensor, eps: float,
                           with_jacobian: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Residuals (B, R) at x (B, P) (rows of candidates ``owner`` (B,)) and, from the same batched call, their
    forward-difference Jacobian (B, R, P) (None without ``with_jacobian``)."""
    if not with_jacobian:
        return residual_fn(x, owner), None
    batch, params = x.shape
    steps = torch.eye(params, dtype=x.dtype) * eps  # (P, P)
    shifted = (x[:, None, :] + steps[None]).reshape(batch * params, params)
    out = residual_fn(torch.cat([x, shifted]), torch.cat([owner, owner.repeat_interleave(params)]))
    r = out[:batch]
    return r, (out[batch:].reshape(batch, params, -1) - r[:, None, :]).div_(eps).transpose(1, 2)  # in place: no new buffer


def levenberg_marquardt(residual_fn: ResidualFn, x0: torch.Tensor, iterations: int, eps: float = 1e-6,
                        damping: float = 1e-2, min_damping: float = 1e-6, max_damping: float = 1e6,
                        tolerance: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Minimise sum(residual_fn(x)^2) per candidate from x0 (B, P).

    Each iteration: one trial step per candidate from its current Jacobian, accepted if it lowers that
    candidate's cost (else the damping grows tenfold and the Jacobian is kept). The trial's Jacobian comes in
    the same batched evaluation as its residuals (one call per iteration: the call's fixed cost dominates at
    these sizes), and replaces the current one when the step is accepted. A candidate is settled once it has,
    two iterations in a row, either taken a step gaining less than ``tolerance`` (relative) or exhausted its
    damping; settled candidates are no longer evaluated, and the solver stops when all are settled. Returns
    the final x (B, P), residuals (B, R) and the number of iterations run.
    """
    x = x0.detach().clone()
    batch, params = x.shape
    with torch.no_grad():
        r, J = residuals_and_jacobian(residual_fn, x, torch.arange(batch), eps, with_jacobian=iterations > 0)
        cost = (r**2).sum(1)
        lam = torch.full((batch,), damping, dtype=x.dtype)
        eye = torch.eye(params, dtype=x.dtype)
        quiet = torch.zeros(batch, dtype=torch.long)
        done = 0
        for iteration in range(iterations):
            active = torch.nonzero(quiet < 2).squeeze(1)
            if active.numel() == 0:
                break
            done += 1
            xa, ra, la, Ja = x[active], r[active], lam[active], J[active]
            JtJ = Ja.transpose(1, 2) @ Ja
            Jtr = (Ja.transpose(1, 2) @ ra[..., None])[..., 0]
            diag = torch.diagonal(JtJ, dim1=1, dim2=2)
            system = JtJ + la[:, None, None] * (torch.diag_embed(diag) + 1e-9 * eye)
            trial = xa + torch.linalg.solve(system, -Jtr)
            r_trial, J_trial = residuals_and_jacobian(residual_fn, trial, active, eps,
                                                      with_jacobian=iteration + 1 < iterations)
            cost_trial = (r_trial**2).sum(1)
            ca = cost[active]
            better = torch.isfinite(cost_trial) & (cost_trial < ca)
            gain = (ca - cost_trial) / ca.clamp_min(1e-12)
            settled = (better & (gain < tolerance)) | (~better & (la >= max_damping))
            quiet[active] = torch.where(settled, quiet[active] + 1, torch.zeros_like(quiet[active]))
            x[active] = torch.where(better[:, None], trial, xa)
            r[active] = torch.where(better[:, None], r_trial, ra)
            if J_trial is not None:
                J[active] = torch.where(better[:, None, None], J_trial, Ja)
            cost[active] = torch.where(better, cost_trial, ca)
            lam[active] = torch.where(better, la * 0.3, la * 10.0).clamp(min_damping, max_damping)
    return x, r, done
