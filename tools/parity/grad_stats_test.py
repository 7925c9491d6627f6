"""grad_stats.compare tells equal gradient distributions from shifted or noisier ones."""

import os
import tempfile

import numpy as np
from absl.testing import absltest

from tools.parity import grad_stats


def _moments(path, draws, shift=0.0, scale=1.0, seed=0):
    """Draws of a [50, 40] 'kernel' ~ N(mean + shift, scale^2 * sigma^2) and a [40] bias."""
    rng = np.random.default_rng(seed)
    mean = np.linspace(-1, 1, 2000).reshape(50, 40)
    sigma = np.linspace(0.5, 2.0, 2000).reshape(50, 40)
    moments = grad_stats.Moments()
    for _ in range(draws):
        kernel = mean + shift + scale * sigma * rng.standard_normal(mean.shape)
        moments.add(
            7, {"dynamics/dense/kernel": kernel, "dynamics/dense/bias": rng.normal(size=40)}
        )
    moments.save(path)


class GradStatsTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp()
        self.path = lambda name: os.path.join(self.dir, name)

    def _kernel(self, **kwargs):
        _moments(self.path("a.npz"), 64, seed=1)
        _moments(self.path("b.npz"), 64, seed=2, **kwargs)
        return grad_stats.compare(self.path("a.npz"), self.path("b.npz"))["tensors"]

    def test_same_distribution_gives_z_and_variance_ratio_near_one(self):
        entry = self._kernel()["7/dynamics/dense/kernel"]
        self.assertAlmostEqual(entry["z"], 1.0, delta=0.1)
        self.assertAlmostEqual(entry["variance_ratio"], 1.0, delta=0.1)
        self.assertEqual(entry["draws"], [64, 64])

    def test_a_shifted_mean_raises_z(self):
        # A shift of 0.5 per element against a standard error of the difference of ~0.22:
        # z ~ sqrt(1 + 0.5^2 / 0.22^2) ~ 2.5.
        entry = self._kernel(shift=0.5)["7/dynamics/dense/kernel"]
        self.assertGreater(entry["z"], 2.0)
        self.assertAlmostEqual(entry["variance_ratio"], 1.0, delta=0.1)

    def test_more_noise_shows_in_the_variance_ratio(self):
        entry = self._kernel(scale=np.sqrt(2.0))["7/dynamics/dense/kernel"]
        self.assertAlmostEqual(entry["variance_ratio"], 0.5, delta=0.05)
        self.assertAlmostEqual(entry["z"], 1.0, delta=0.1)

    def test_different_batches_are_an_error(self):
        _moments(self.path("a.npz"), 4)
        moments = grad_stats.Moments()
        moments.add(8, {"dynamics/dense/bias": np.zeros(40)})
        moments.save(self.path("c.npz"))
        with self.assertRaisesRegex(ValueError, "batches differ"):
            grad_stats.compare(self.path("a.npz"), self.path("c.npz"))


if __name__ == "__main__":
    absltest.main()
