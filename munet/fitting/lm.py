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


def jacobian(residual_fn: ResidualFn, x: torch.Tensor, r0: torch.Tensor, eps: float) -> torch.Tensor:
    """(B, R, P) forward-difference Jacobian at x (B, P), given r0 = residual_fn(x) (B, R)."""
    batch, params = x.shape
    steps = torch.eye(params, dtype=x.dtype) * eps  # (P, P)
    shifted = (x[:, None, :] + steps[None]).reshape(batch * params, params)
    owner = torch.arange(batch).repeat_interleave(params)
    r = residual_fn(shifted, owner).reshape(batch, params, -1)  # (B, P, R)
    return ((r - r0[:, None, :]) / eps).transpose(1, 2)


def levenberg_marquardt(residual_fn: ResidualFn, x0: torch.Tensor, iterations: int, eps: float = 1e-6,
                        damping: float = 1e-2, min_damping: float = 1e-6, max_damping: float = 1e6,
                        tolerance: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Minimise sum(residual_fn(x)^2) per candidate from x0 (B, P).

    Each iteration: one Jacobian, one trial step per candidate (accepted if it lowers that candidate's
    cost, else the damping grows tenfold). Stops early once every candidate has, two iterations in a
    row, either taken a step gaining less than ``tolerance`` (relative) or exhausted its damping. Returns the final x (B, P), residuals (B, R)
    and the number of iterations run.
    """
    x = x0.detach().clone()
    batch, params = x.shape
    owner = torch.arange(batch)
    with torch.no_grad():
        r = residual_fn(x, owner)
        cost = (r**2).sum(1)
        lam = torch.full((batch,), damping, dtype=x.dtype)
        eye = torch.eye(params, dtype=x.dtype)
        quiet = 0
        done = 0
        for _ in range(iterations):
            done += 1
            J = jacobian(residual_fn, x, r, eps)
            JtJ = J.transpose(1, 2) @ J
            Jtr = (J.transpose(1, 2) @ r[..., None])[..., 0]
            diag = torch.diagonal(JtJ, dim1=1, dim2=2)
            system = JtJ + lam[:, None, None] * (torch.diag_embed(diag) + 1e-9 * eye)
            delta = torch.linalg.solve(system, -Jtr)
            trial = x + delta
            r_trial = residual_fn(trial, owner)
            cost_trial = (r_trial**2).sum(1)
            better = torch.isfinite(cost_trial) & (cost_trial < cost)
            gain = (cost - cost_trial) / cost.clamp_min(1e-12)
            # a candidate is settled when its step was taken and gained little, or damping is exhausted
            settled = (better & (gain < tolerance)) | (~better & (lam >= max_damping))
            quiet = quiet + 1 if bool(settled.all()) else 0
            x = torch.where(better[:, None], trial, x)
            r = torch.where(better[:, None], r_trial, r)
            cost = torch.where(better, cost_trial, cost)
            lam = torch.where(better, lam * 0.3, lam * 10.0).clamp(min_damping, max_damping)
            if quiet >= 2:
                break
    return x, r, done
