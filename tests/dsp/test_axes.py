"""Orientation-free axes: chunk invariance, rotation invariance, and the axis they find."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.axes import GravityAxis, PrincipalAxis
from tests.dsp.conftest import UPSIDE_DOWN, random_bounds, random_rotation

FloatArray = NDArray[np.float64]
FS_HZ = 100.0
STEP_S = 0.35
PEAK_G = 2.5
# Contact fraction at which half-sines of PEAK_G average exactly 1 g: 2 · PEAK_G · duty / π = 1.
DUTY = np.pi / (2.0 * PEAK_G)
WARMUP_S = 8.0  # two averaging time constants


def trunk_like(n: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Sensor-frame acceleration (3, n) with z vertical, and that vertical component (n,).

    Vertical: 0..2.5 g half-sine contacts averaging 1 g; horizontal: 0.1 g noise, and a constant
    -0.5 g on x (a tilted or biased channel that drags the mean away from the vertical).
    """
    t = np.arange(n) / FS_HZ
    phase = (t % STEP_S) / (DUTY * STEP_S)
    vertical = np.where(phase < 1.0, PEAK_G * np.sin(np.pi * np.minimum(phase, 1.0)), 0.0)
    acc = np.stack([-0.5 + 0.1 * rng.normal(size=n), 0.1 * rng.normal(size=n), vertical])
    return acc, vertical


def bank(rng: np.random.Generator, n: int = 1500) -> FloatArray:
    """Two streams (2, 3, n): a trunk-like signal and a rotated one."""
    acc, _ = trunk_like(n, rng)
    return np.stack([acc, random_rotation(rng) @ acc])


def feed(stage: GravityAxis | PrincipalAxis, acc: FloatArray, bounds: list[int]) -> FloatArray:
    blocks = [stage.process(acc[..., a:b]) for a, b in itertools.pairwise(bounds)]
    for (a, b), out in zip(itertools.pairwise(bounds), blocks, strict=True):
        assert out.shape == (acc.shape[0], b - a)
    return np.concatenate(blocks, axis=1)


@pytest.mark.parametrize("make", [GravityAxis, PrincipalAxis])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bit_identical_whatever_the_blocks(
    make: type[GravityAxis | PrincipalAxis], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    acc = bank(rng)
    n = acc.shape[2]
    whole = feed(make(FS_HZ), acc, [0, n])
    for max_block in (1, 7, 60, 400):
        stage = make(FS_HZ)
        assert np.array_equal(feed(stage, acc, random_bounds(rng, n, max_block)), whole)
        # reset() restores the initial state: a second pass gives the same output again
        stage.reset()
        assert np.array_equal(feed(stage, acc, [0, n]), whole)


@pytest.mark.parametrize(
    ("make", "settled_s"),
    # The gravity estimate rotates with the input from the first sample; the principal axis
    # needs its covariance to settle before the top eigenvector is well separated.
    [(GravityAxis, 0.0), (PrincipalAxis, WARMUP_S)],
)
def test_projection_is_orientation_free(
    make: type[GravityAxis | PrincipalAxis], settled_s: float
) -> None:
    rng = np.random.default_rng(7)
    acc, _ = trunk_like(2000, rng)
    rotations = [UPSIDE_DOWN, *(random_rotation(rng) for _ in range(4))]
    rotated = np.stack([acc] + [r @ acc for r in rotations])  # (5, 3, n)
    out = make(FS_HZ).process(rotated)[:, int(settled_s * FS_HZ) :]
    assert np.ptp(out[0]) > 2.0  # the signal under test is the full vertical swing
    np.testing.assert_allclose(out[1:], np.broadcast_to(out[0], out[1:].shape), rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_gravity_axis_of_a_still_sensor_reads_one_g(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rotation = random_rotation(rng) @ (UPSIDE_DOWN if seed % 2 else np.eye(3))
    still = np.repeat((rotation @ np.array([0.0, 0.0, 1.0]))[None, :, None], 300, axis=2)
    out = GravityAxis(FS_HZ).process(still)
    np.testing.assert_allclose(out, 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_principal_axis_finds_the_vertical_with_gravity_positive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    acc, vertical = trunk_like(2500, rng)
    rotation = random_rotation(rng) @ (UPSIDE_DOWN if seed % 2 else np.eye(3))
    sensor = (rotation @ acc)[None]
    settled = int(WARMUP_S * FS_HZ)
    principal = PrincipalAxis(FS_HZ).process(sensor)[0, settled:]
    # The projection is the true vertical: a sign flip would give -vertical, a tilt towards the
    # biased horizontal channel would mix in its -0.5 g and its noise.
    np.testing.assert_allclose(principal, vertical[settled:], rtol=0, atol=0.02)
    # The gravity direction, by contrast, is tilted ~27° by the bias: its projection is off.
    gravity = GravityAxis(FS_HZ).process(sensor)[0, settled:]
    assert np.max(np.abs(gravity - vertical[settled:])) > 0.2
