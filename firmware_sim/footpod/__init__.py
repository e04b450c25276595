"""The simulated athlete served as a BLE footpod of each profile, through the emulated BlueZ.

One module per profile (the device side of ``device.profiles``, with the same codecs), and
``SimulatedFootpod``, which paces the athlete's samples onto the link and holds the test
controls (drop the link, stall, corrupt or skip packets, change the rate, closed loop).
"""

from firmware_sim.footpod.pod import PROFILES, SimulatedFootpod

__all__ = ["PROFILES", "SimulatedFootpod"]
