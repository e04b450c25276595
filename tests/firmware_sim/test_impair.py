"""Each impairment does what it says, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.events import Placement
from dsp.plan import SessionPlan
from dsp.samples import SampleBlock
from firmware_sim import Impairments, SimulatedAthlete

SHORT = SessionPlan(
    name="short", warmup_s=60.0, reps=3, rep_s=20.0, min_recovery_s=40.0, cooldown_s=30.0
)
FS_HZ = 200.0


def _gyro(block: SampleBlock) -> np.ndarray:
    assert block.gyro_dps is not None
    return block.gyro_dps


def _read(
    placement: Placement,
    impairments: Impairments | None = None,
    seed: int = 4,
    duration_s: float = 120.0,
) -> SampleBlock:
    athlete = SimulatedAthlete(SHORT, placement, seed=seed, fs_hz=FS_HZ, impairments=impairments)
    return athlete.read(duration_s)


def test_from_spec_parses_the_cli_string() -> None:
    imp = Impairments.from_spec("noise=0.05,orientation,saturation=8,jitter=2,drop=0.01,drift=50")
    assert imp == Impairments(
        noise_g=0.05,
        random_orientation=True,
        saturation_g=8.0,
        jitter_ms=2.0,
        drop_rate=0.01,
        clock_drift_ppm=50.0,
    )
    assert Impairments.from_spec(" bias = 0.1 ") == Impairments(bias_g=0.1)
    assert Impairments.from_spec("") == Impairments.from_spec("none") == Impairments()
    assert Impairments(**imp.to_dict()) == imp  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("loud=3", "bad impairment"),
        ("noise", "bad impairment"),
        ("drop=x", "needs a number"),
        ("drop=1.5", "drop_rate"),
        ("saturation=1", "saturation_g"),
        ("jitter=-1", "jitter_ms"),
    ],
)
def test_from_spec_rejects_bad_input_with_a_helpful_message(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Impairments.from_spec(spec)


def test_saturation_clips_each_axis_at_the_range() -> None:
    clean = _read(Placement.SHANK)
    clipped = _read(Placement.SHANK, Impairments(saturation_g=8.0))
    assert np.abs(clean.acc_g).max() > 8.0  # hard impacts exceed the range...
    assert np.abs(clipped.acc_g).max() == 8.0  # ...and are held at it
    hit = np.abs(clean.acc_g) > 8.0
    assert np.all(np.abs(clipped.acc_g[hit]) == 8.0)
    assert np.array_equal(clipped.acc_g[~hit], clean.acc_g[~hit])


def test_drops_remove_whole_packets_as_gaps() -> None:
    imp = Impairments(drop_rate=0.05)
    clean = _read(Placement.FOOT)
    lossy = _read(Placement.FOOT, imp)
    index = np.round(lossy.t_s * FS_HZ).astype(int)
    assert np.all(np.diff(lossy.t_s) > 0)
    # Surviving samples are untouched; lost ones are whole packets of 4-10 samples.
    assert np.array_equal(lossy.acc_g, clean.acc_g[index])
    assert np.array_equal(_gyro(lossy), _gyro(clean)[index])
    size = imp.packet_size(4)
    assert 4 <= size <= 10
    gaps = np.diff(index) - 1
    assert np.any(gaps > 0)
    assert np.all(gaps[gaps > 0] % size == 0)
    lost = 1 - len(lossy) / len(clean)
    assert 0.03 < lost < 0.07


def test_jitter_moves_timestamps_but_keeps_them_in_order() -> None:
    clean = _read(Placement.TRUNK)
    jittery = _read(Placement.TRUNK, Impairments(jitter_ms=2.0))
    error_ms = (jittery.t_s - clean.t_s) * 1000
    assert np.all(np.diff(jittery.t_s) > 0)
    assert 1.0 < np.sqrt(np.mean(error_ms**2)) <= 2.0
    assert np.abs(error_ms).max() <= 0.45 * 1000 / FS_HZ + 1e-9
    assert np.array_equal(jittery.acc_g, clean.acc_g)


def test_random_orientation_rotates_but_preserves_norms() -> None:
    clean = _read(Placement.FOOT)
    turned = _read(Placement.FOOT, Impairments(random_orientation=True))
    np.testing.assert_allclose(
        np.linalg.norm(turned.acc_g, axis=1), np.linalg.norm(clean.acc_g, axis=1)
    )
    np.testing.assert_allclose(
        np.linalg.norm(_gyro(turned), axis=1), np.linalg.norm(_gyro(clean), axis=1)
    )
    assert np.abs(turned.acc_g - clean.acc_g).max() > 0.5
    mountings = [Impairments(random_orientation=True).mounting(seed) for seed in range(200)]
    rotations = [rot for rot in mountings if rot is not None]
    assert len(rotations) == 200 and Impairments().mounting(0) is None
    for rot in rotations[:5]:
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
    # Uniform over rotations: the sensor's z axis points down about as often as up.
    up = np.array([rot[2, 2] for rot in rotations])
    assert 0.35 < np.mean(up < 0) < 0.65


def test_bias_and_noise_add_what_they_say() -> None:
    clean = _read(Placement.TRUNK)
    biased = _read(Placement.TRUNK, Impairments(bias_g=0.2))
    offset = biased.acc_g - clean.acc_g
    np.testing.assert_allclose(offset, np.broadcast_to(offset[0], offset.shape), atol=1e-12)
    assert np.linalg.norm(offset[0]) == pytest.approx(0.2)
    noisy = _read(Placement.TRUNK, Impairments(noise_g=0.05))
    assert np.std(noisy.acc_g - clean.acc_g) == pytest.approx(0.05, rel=0.05)


def test_clock_drift_scales_timestamps_and_truth_alike() -> None:
    ppm = 500.0
    athletes = [
        SimulatedAthlete(SHORT, Placement.SHANK, seed=4, impairments=Impairments(clock_drift_ppm=p))
        for p in (0.0, ppm)
    ]
    blocks = [a.read(60.0) for a in athletes]
    np.testing.assert_allclose(blocks[1].t_s, blocks[0].t_s * (1 + ppm * 1e-6), rtol=0, atol=1e-12)
    assert np.array_equal(blocks[1].acc_g, blocks[0].acc_g)
    plain, drifted = (a.truth() for a in athletes)
    assert len(plain.contacts_s) == len(drifted.contacts_s) > 100
    for (ic, to, _), (ic_d, to_d, _) in zip(plain.contacts_s, drifted.contacts_s, strict=True):
        assert ic_d == pytest.approx(ic * (1 + ppm * 1e-6), abs=1e-12)
        assert to_d == pytest.approx(to * (1 + ppm * 1e-6), abs=1e-12)
