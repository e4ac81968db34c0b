import pytest
import torch

import toyflow
from toyflow import couplings, data, metrics, models
from toyflow.flow_matching import FlowMatching
from toyflow.latent import Autoencoder, Encoded, Lifted, Reconstruction, sample
from toyflow.train import fit


def test_projection_undoes_the_noise_free_lift(generator):
    lifted = Lifted("moons", dim=32, noise=0.0)
    y = data.get("moons").sample(500, generator)
    x = lifted.lift(y)
    assert x.shape == (500, 32)
    torch.testing.assert_close(lifted.project(x), y, atol=1e-5, rtol=0)
    assert (x - torch.cat([y, torch.zeros(500, 30)], 1) @ lifted.rotation.T).norm(dim=1).mean() > 1, "the lift must bend"


def test_the_map_is_fixed_by_its_seed_and_the_noise_is_isotropic(generator):
    a, b, c = Lifted(seed=0), Lifted(seed=0), Lifted(seed=1)
    assert torch.equal(a.rotation, b.rotation) and not torch.equal(a.rotation, c.rotation)
    noisy = Lifted("moons", dim=16, noise=0.1).sample(20000, torch.Generator().manual_seed(3))
    clean = Lifted("moons", dim=16, noise=0.0).sample(20000, torch.Generator().manual_seed(3))  # the same 2D points
    noise = noisy - clean
    assert noise.std().item() == pytest.approx(0.1, rel=0.03)
    assert (noise.T @ noise / len(noise) - 0.01 * torch.eye(16)).abs().max() < 0.002  # isotropic


def test_calibrated_latents_are_standardised(generator):
    lifted = Lifted(dim=8)
    toyflow.seed(0)
    autoencoder = Autoencoder(8, latent=2, hidden=16)
    autoencoder.calibrate(lifted.sample(4000, generator))
    z = Encoded(lifted, autoencoder).sample(4000, generator)
    assert z.shape == (4000, 2)
    assert z.mean(0).abs().max() < 0.1 and (z.std(0) - 1).abs().max() < 0.1
    torch.testing.assert_close(autoencoder.decode(autoencoder.encode(z.new_zeros(1, 8))), autoencoder(z.new_zeros(1, 8)))


def test_latent_flow_matching_end_to_end(generator):
    lifted = Lifted("moons", dim=8, noise=0.02)
    toyflow.seed(0)
    autoencoder = Autoencoder(8, latent=2, hidden=64)
    history = fit(autoencoder, Reconstruction(lifted, batch_size=128), 400, lr=3e-3, progress=False)
    assert history.loss[-1] < 0.1 * history.loss[0], "the autoencoder should reconstruct the lifted data"
    autoencoder.calibrate(lifted.sample(4000, generator))
    flow = models.VelocityMLP(hidden=64)
    pairs = couplings.PairSampler(data.Gaussian((0.0, 0.0)), Encoded(lifted, autoencoder))
    fit(flow, FlowMatching(pairs, batch_size=128), 800, lr=1e-2, progress=False)
    z0 = torch.randn(500, 2, generator=generator)
    solution = sample(flow, autoencoder, z0, steps=20)
    assert solution.x.shape == (500, 8) and solution.nfe == 20
    reference = lifted.project(lifted.sample(500, generator))
    with torch.no_grad():
        untrained = metrics.w2(lifted.project(autoencoder.decode(z0)), reference)  # decoding the source, no flow
    trained = metrics.w2(lifted.project(solution.x), reference)
    assert trained < 0.5 * untrained, f"W2 in the 2D coordinates: {trained:.3f} with the latent flow, {untrained:.3f} without"


def test_reconstruction_meets_the_objective_contract():
    toyflow.seed(0)
    autoencoder = Autoencoder(8, latent=2, hidden=16)
    loss = Reconstruction(Lifted(dim=8), batch_size=16)(autoencoder)  # generator=None works
    assert loss.ndim == 0 and torch.isfinite(loss)
    g = torch.Generator().manual_seed(0)
    x = Lifted(dim=8).sample(16, torch.Generator().manual_seed(0))
    torch.testing.assert_close(Reconstruction(Lifted(dim=8), batch_size=16)(autoencoder, g), ((autoencoder(x) - x) ** 2).mean())

    class Double(data.Distribution):
        dim = 8

        def _sample(self, n, generator, device):
            return Lifted(dim=8)._sample(n, generator, device).double()

    assert Reconstruction(Double(), batch_size=16)(autoencoder.double(), g).dtype == torch.float64


def test_encoded_draws_by_the_device_rule_and_encodes_where_the_autoencoder_lives(generator):
    lifted = Lifted(dim=8)
    toyflow.seed(0)
    autoencoder = Autoencoder(8, latent=2, hidden=16)
    z = Encoded(lifted, autoencoder).sample(10, torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = autoencoder.encode(lifted.sample(10, torch.Generator().manual_seed(4)))
    torch.testing.assert_close(z, expected)
    assert Encoded(lifted, autoencoder).sample(3).shape == (3, 2)  # no generator


def test_bad_input():
    with pytest.raises(ValueError, match="dim .* must be an int >= 3, got 2"):
        Lifted(dim=2)
    for name, value in (("noise", -0.1), ("frequency", -1.0), ("amplitude", float("nan")), ("seed", -1), ("seed", 0.5)):
        with pytest.raises(ValueError, match=f"{name} must be"):
            Lifted(**{name: value})
    with pytest.raises(ValueError, match="unknown"):
        Lifted(data_name="nothing")
    with pytest.raises(ValueError, match=r"latent must be an int in \[1, dim = 8\), got 8"):
        Autoencoder(8, latent=8)
    with pytest.raises(ValueError, match=r"latent must be an int in \[1, dim = 8\), got 0"):
        Autoencoder(8, latent=0)
    with pytest.raises(ValueError, match="dim must be an int >= 2"):
        Autoencoder(1, latent=1)
    with pytest.raises(ValueError, match="hidden must be an int >= 1"):
        Autoencoder(8, hidden=0)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 8\).*got \(2, 3\)"):
        Autoencoder(8).encode(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"z must have shape \(n, 2\).*got \(2, 3\)"):
        Autoencoder(8).decode(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="z must be a torch.Tensor"):
        Autoencoder(8).decode([[0.0, 0.0]])
    with pytest.raises(ValueError, match="at least 2 points"):
        Autoencoder(8).calibrate(torch.zeros(1, 8))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 32\)"):
        Lifted().project(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="data must be a distribution"):
        Reconstruction("moons")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        Reconstruction(Lifted(), batch_size=0)
    with pytest.raises(TypeError, match="model must be a latent.Autoencoder"):
        Reconstruction(Lifted())(models.VelocityMLP())
    with pytest.raises(TypeError, match="data must be a distribution"):
        Encoded(None, Autoencoder(8))
    with pytest.raises(TypeError, match="autoencoder must be a latent.Autoencoder"):
        Encoded(Lifted(dim=8), models.VelocityMLP())
    flow, autoencoder = models.VelocityMLP(hidden=8), Autoencoder(8)
    with pytest.raises(TypeError, match="autoencoder must be a latent.Autoencoder"):
        sample(flow, "autoencoder", torch.zeros(3, 2))
    with pytest.raises(TypeError, match="velocity must be"):
        sample(3, autoencoder, torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"z0 must have shape \(n, 2\)"):
        sample(flow, autoencoder, torch.zeros(3, 8))
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        sample(flow, autoencoder, torch.zeros(3, 2), steps=0)


def test_the_latent_sampler_checker(capsys):
    from toyflow import exercises, solvers

    assert exercises.check_latent_sample(lambda v, decoder, z0, steps: decoder(solvers.integrate(v, z0, steps).x))
    for mistake, words in ((lambda v, d, z0, steps: d(solvers.integrate(v, z0, 1).x), "only one step"),
                           (lambda v, d, z0, steps: d(z0), "source point itself was decoded")):
        assert not exercises.check_latent_sample(mistake)
        assert words in capsys.readouterr().out
