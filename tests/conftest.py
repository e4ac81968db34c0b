import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
