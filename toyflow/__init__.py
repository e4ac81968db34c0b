"""toyflow: flow-based generative modelling on 2D data, small enough to read, fast enough to run.

Time runs from the source ``x0 ~ π0`` at ``t = 0`` to the target ``x1 ~ π1`` at ``t = 1``.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from . import closed_form, couplings, data, flow_matching, meanflow, metrics, models, nf, paths, rectify, solvers, train
from . import blockwise, flowmap, latent  # after meanflow and nf, which they build on

__version__ = "0.1.0"
__all__ = [
    "blockwise", "closed_form", "couplings", "data", "device", "flow_matching", "flowmap", "latent", "meanflow", "metrics",
    "models", "nf", "paths", "rectify", "seed", "solvers", "train",
]


def seed(n: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (network initialisation, plots)."""
    random.seed(n)
    np.random.seed(n)
    torch.manual_seed(n)


def device() -> torch.device:
    """CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
