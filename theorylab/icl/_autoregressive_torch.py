"""torch training loop of :mod:`theorylab.icl.autoregressive` (float64, CPU).

:func:`adam_lsa` fits one linear self-attention layer with the forward of the public
:func:`~theorylab.icl.autoregressive.lsa_forecast` (``backend="torch"``), so the trained model is
exactly the function the checks evaluate.  Adam is written out (β₁ = 0.9, β₂ = 0.999, ε = 1e-8,
bias-corrected): ``torch.optim`` imports torch's compiler stack, seconds on a first call.
"""

from __future__ import annotations

import numpy as np
import torch

from ..backends import one_torch_thread


def adam_lsa(W0, batches, p: int, *, lr: float, n_min: int):
    """Adam from the weights ``W0`` (3 arrays (p + 1, p + 1)) over the prompt batches (each (B, T) numpy):
    loss = mean (ŷ_n − x_{p+n})² over n >= n_min.  Returns WQ, WK, WV (numpy float64) and the losses."""
    from .autoregressive import lsa_forecast

    with one_torch_thread():  # tiny tensors: one thread is fastest, and its sums have one order on every machine
        return _adam(W0, batches, p, lr, n_min, lsa_forecast)


def _adam(W0, batches, p, lr, n_min, lsa_forecast):
    b1, b2, eps = 0.9, 0.999, 1e-8
    Ws = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in W0]
    m1 = [torch.zeros_like(W) for W in Ws]
    m2 = [torch.zeros_like(W) for W in Ws]
    losses = []
    for t, x in enumerate(batches, start=1):
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        pred = lsa_forecast(xt, p, *Ws, backend="torch")  # (B, T − p − 1)
        loss = ((pred - xt[:, p + 1:])[:, n_min - 1:] ** 2).mean()
        grads = torch.autograd.grad(loss, Ws)
        with torch.no_grad():
            for W, g, u, v in zip(Ws, grads, m1, m2):
                u.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                W.sub_(lr * (u / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps))
        losses.append(float(loss.detach()))
    return (*(W.detach().numpy().copy() for W in Ws), np.asarray(losses))
