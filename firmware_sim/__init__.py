"""The simulated runner and footpod: seeded accelerometer/gyroscope streams, exact ground truth."""

from firmware_sim.gait import AthleteProfile
from firmware_sim.impair import Impairments
from firmware_sim.runner import SimulatedAthlete, Truth

__all__ = ["AthleteProfile", "Impairments", "SimulatedAthlete", "Truth"]
