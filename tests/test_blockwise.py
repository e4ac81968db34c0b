import pytest
import torch

import toyflow
from toyflow import couplings, models
from toyflow.blockwise import Blockwise, hidden_for_parameters, segment_of
from toyflow.closed_form import GaussianToGaussian
from toyflow.flow_matching import FlowMatching
from toyflow.train import fit


def test_segments_hold_their_start_and_not_their_end():
    cuts = torch.tensor([0.0, 0.2, 0.5, 1.0])
    t = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0])
    assert segment_of(t, cuts).tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert Blockwise([0.0, 0.2, 0.5, 1.0], hidden=8).segment(t).tolist() == [0, 0, 1, 1, 2, 2, 2]


def test_each_time_is_answered_by_its_segments_network(generator):
    toyflow.seed(0)
    v = Blockwise(4, hidden=16)
    x, t = torch.randn(64, 2, generator=generator), torch.rand(64, generator=generator)
    expected = torch.stack([v.nets[int(k)](x[i : i + 1], t[i : i + 1])[0] for i, k in enumerate(v.segment(t))])
    torch.testing.assert_close(v(x, t), expected)
    torch.testing.assert_close(v(x, 0.6), v.nets[2](x, 0.6))  # one time for the batch: one network


def test_a_segment_learns_only_from_its_own_times(generator):
    toyflow.seed(0)
    v = Blockwise(2, hidden=16)
    x, t = torch.randn(32, 2, generator=generator), 0.5 * torch.rand(32, generator=generator)  # all in segment 0
    v(x, t).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in v.nets[0].parameters())
    assert all(p.grad is None for p in v.nets[1].parameters())


@pytest.mark.parametrize("segments", [1, 2, 4, 8])
def test_equal_parameters(segments):
    budget = sum(p.numel() for p in models.VelocityMLP().parameters())
    hidden = hidden_for_parameters(budget, segments)
    count = sum(p.numel() for p in Blockwise(segments, hidden=hidden).parameters())
    bigger = sum(p.numel() for p in Blockwise(segments, hidden=hidden + 1).parameters())
    assert count <= budget < bigger
    if segments == 1:
        assert hidden == 128


def test_blockwise_flow_matching_learns_the_closed_form_velocity():
    case = GaussianToGaussian(mean=(2.0, 1.0), std=0.5)
    toyflow.seed(0)
    v = Blockwise(2, hidden=32)
    fit(v, FlowMatching(couplings.PairSampler(case.source, case.target)), 600, lr=3e-3, progress=False)
    generator = torch.Generator().manual_seed(1)
    t = torch.rand(2000, generator=generator) * 0.9
    x = case.flow_map(case.source.sample(2000, generator), 0.0, t)  # points of the marginal at time t
    with torch.no_grad():
        error = (v(x, t) - case.velocity(x, t)).norm(dim=1).mean().item()
    assert error < 0.15, f"the learned velocity is off by {error:.3f} on average"


def test_bad_input():
    with pytest.raises(ValueError, match="segments must be a positive int"):
        Blockwise(0)
    with pytest.raises(ValueError, match="segments must be a positive int"):
        Blockwise(True)
    with pytest.raises(ValueError, match="must increase from 0 to 1"):
        Blockwise([0.0, 0.6, 0.4, 1.0])
    with pytest.raises(ValueError, match="must increase from 0 to 1"):
        Blockwise([0.1, 1.0])
    with pytest.raises(ValueError, match="dim must be an int >= 1"):
        Blockwise(2, dim=0)
    with pytest.raises(ValueError, match="hidden must be an int >= 1"):
        Blockwise(2, hidden=0)
    v = Blockwise(2, hidden=8)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\).*got \(3, 5\)"):
        v(torch.zeros(3, 5), torch.zeros(3))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        v([[0.0, 0.0]], 0.5)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(3,\)"):
        v(torch.zeros(3, 2), torch.zeros(4))
    for t in (1.5, -0.1, float("nan"), torch.tensor([0.2, 1.01, 0.3])):  # a time outside [0, 1] has no segment
        with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
            v(torch.zeros(3, 2), t)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\].*got 2.0"):
        segment_of(torch.tensor([0.5, 2.0]), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="too few"):
        hidden_for_parameters(10, 4)
    for name in ("parameters", "segments", "depth"):
        with pytest.raises(ValueError, match=f"{name} must be an int >= 1"):
            hidden_for_parameters(**{"parameters": 1000, "segments": 2, name: 0})


def test_the_time_broadcast_is_the_bottom_layers():
    import toyflow.blockwise as module

    assert not hasattr(module, "_as_batch_time")
    toyflow.seed(0)
    v = Blockwise(2, hidden=8).double()
    out = v(torch.zeros(4, 2, dtype=torch.float64), 0.7)
    assert out.dtype == torch.float64 and out.shape == (4, 2)


def test_the_segment_checker(capsys):
    from toyflow import exercises

    assert exercises.check_segment(segment_of)
    for mistake, words in ((lambda t, b: torch.bucketize(t, b[1:-1]), "goes to the segment that ends there"),
                           (lambda t, b: torch.bucketize(t, b[1:], right=True), "falls off the end"),
                           (lambda t, b: (t * (len(b) - 1)).floor().long().clamp(max=len(b) - 2), "taken to be equal")):
        assert not exercises.check_segment(mistake)
        assert words in capsys.readouterr().out
