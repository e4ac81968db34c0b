"""toyflow: flow-based generative modelling on 2D data, small enough to read, fast enough to run.

Time runs from the source ``x0 ~ π0`` at ``t = 0`` to the target ``x1 ~ π1`` at ``t = 1``.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from . import (
    batch,
    blockwise,
    closed_form,
    couplings,
    data,
    finetune,
    flow_matching,
    flowmap,
    guidance,
    latent,
    meanflow,
    metrics,
    models,
    nf,
    pairs,
    paths,
    policy,
    rectify,
    refine,
    restore,
    schedules,
    sde,
    search,
    solvers,
    train,
    transport,
)

__version__ = "0.1.0"
__all__ = [
    "batch", "blockwise", "closed_form", "couplings", "data", "device", "finetune", "flow_matching", "flowmap", "guidance",
    "latent", "meanflow", "metrics", "models", "nf", "pairs", "paths", "policy", "rectify", "refine", "restore", "schedules",
    "sde", "search", "seed", "solvers", "train", "transport",
]


def seed(n: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (network initialisation, plots)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"seed must be an int, got {n!r} ({type(n).__name__})")
    if not 0 <= n < 2**32:
        raise ValueError(f"seed must be in [0, 2**32) (NumPy's range), got {n}")
    random.seed(n)
    np.random.seed(n)
    torch.manual_seed(n)


def device() -> torch.device:
    """CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
