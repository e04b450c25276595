"""Timing models of the contact landmarks per placement: thresholds, spans and calibrated lags.

The physics behind each number, and how the lags were calibrated, are in ``docs/dsp.md``
("Landmarks per placement"); :mod:`dsp.steps` and :mod:`dsp.steps_foot` use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsp.events import Placement


@dataclass(frozen=True, slots=True)
class LandmarkConfig:
    """Timing model of one placement. Lags are landmark time minus true event time, in seconds."""

    ic_lag_s: float
    to_lag_s: float
    gct_min_s: float = 0.10
    gct_max_s: float = 0.45
    min_step_s: float = 0.45  # between two ICs seen by this sensor (a stride for one-leg sensors)
    refractory_fraction: float = 0.0  # ... or this fraction of the recent median interval, if
    # longer: a walking stride (~1.1 s) holds a push-off peak ~0.55 s after the impact
    ic_replace_s: float = 0.45  # a bigger landmark this soon after a pending IC replaces it
    hold_pending: bool = False  # shank: a pending IC holds until gct_max_s has passed
    max_interval_s: float = 2.0  # a longer interval between contacts is a pause, not a stride
    ic_rise_s: float = 0.0  # shank: an impact's height is its rise above the lowest |a| this
    # far before it (a sharp impact, not a broad push-off hump, is the contact)
    swing_s: float = 0.0  # shank: an impact ends a swing: the long-axis acceleration fell ...
    swing_max_g: float = 0.45  # ... below this within swing_s before it, and after the last
    # step's IC + gct_min_s (a walking push-off comes from a stance near 1 g); 0 s: no test
    ic_back_s: float = 0.5  # an impact peak is the largest |a| over this span before it
    ic_ahead_s: float = 0.04  # ... and over this span after it (its confirmation latency)
    ic_min_g: float = 2.0  # shank: impact peak of |a|
    stance_anchored: bool = False  # foot: the IC is found back from the start of quiet stance
    quiet_gyro_dps: float = 60.0  # foot: quiet stance is |ω| below this (with a gyroscope) ...
    quiet_acc_g: float = 1.5  # ... and |a| within this of 1 g (a shoe is not still in stance)
    quiet_min_s: float = 0.04  # ... for at least this long (with a gyroscope)
    quiet_mean_acc_g: float = 0.7  # ... with the mean of | |a| - 1 g | over it below this: a
    # walked swing pauses its pitch rate before the contact while decelerating at 1.4-2.4 g
    quiet_min_acc_only_s: float = 0.02  # without one: the calm (below) holds this long
    calm_window_s: float = 0.05  # acc-only calm: over this span, the mean of | |a| - 1 g | ...
    calm_acc_g: float = 0.3  # ... below this (a clip rings around 1 g in stance, never still)
    calm_tilt_g: float = 0.6  # ... and the mean of |a - mean gravity direction| below this
    impact_window_s: float = 0.12  # foot: the impact is the sharpest change this far before it
    ic_relative: float = 0.25  # ... and at least this fraction of the recent median impact
    ic_relative_acc_only: float = 0.25  # foot without gyroscope: the same, for the jerk landmark
    ic_relative_push_off: float = 0.25  # ... found back from a push-off: at least this fraction
    swing_min_s: float = 0.15  # ... and this long after the last step's toe-off
    stance_after_to_s: float = 0.22  # foot: a stance-anchored IC this long after it (a walked
    # swing pauses its pitch rate 0.1-0.2 s after toe-off, near 1-3 g; a walked swing lasts
    # 0.24 s or more, a running one 0.4 s or more)
    push_off_back_s: float = 0.45  # ... and at most this long before the push-off
    gct_max_acc_only_s: float = 0.45  # foot without gyroscope: a longer contact is refused (held
    # as long as with a gyroscope, a real shoe clip's swing calm ends contacts late)
    rhythm_min: float = 0.8  # ... and this fraction of the recent median stride after its IC
    supersede_ratio: float = 1.5  # a landmark this much above the last step's, within one
    # stride of it, shows that step was not a contact: it is taken (the detector re-locks)
    to_back_s: float = 0.10
    to_ahead_s: float = 0.08
    to_trough_max_g: float = 0.5  # shank: the long-axis trough must dip below this
    to_peak_min: float = 2.0  # foot: push-off |a| (g) without gyro ...
    to_drop_within_s: float = 0.04  # ... the largest over the last to_back_s, and |a| falls,
    # within this and before it rises above the peak again, by ...
    to_drop: float = 0.3  # ... this fraction of the peak's height above 1 g ...
    to_drop_min_g: float = 0.5  # ... and by at least this (see _to_ok)
    to_gyro_min_dps: float = 150.0  # foot: push-off |ω| (deg/s)
    threshold_g: float = 0.8  # trunk: contact threshold above the flight floor
    floor_window_s: float = 1.0  # trunk: the flight floor is the running minimum over this
    peak_min_g: float = 1.3  # trunk: a contact must reach this
    dip_max_s: float = 0.04  # trunk: a shorter dip below threshold is within one contact
    smooth_hz: float = 20.0  # trunk: low-pass before thresholding


CONFIGS: dict[Placement, LandmarkConfig] = {
    Placement.SHANK: LandmarkConfig(
        ic_lag_s=0.030,
        to_lag_s=0.020,
        gct_max_s=1.0,
        swing_s=1.0,
        ic_back_s=0.3,
        ic_min_g=0.5,
        ic_rise_s=0.05,
        ic_replace_s=0.25,
        hold_pending=True,
        refractory_fraction=0.45,
        to_trough_max_g=0.6,
    ),
    Placement.FOOT: LandmarkConfig(
        ic_lag_s=0.002,
        to_lag_s=0.0,
        gct_max_s=1.0,
        stance_anchored=True,
        ic_min_g=0.0,
        ic_relative=0.0,
    ),
    Placement.TRUNK: LandmarkConfig(
        ic_lag_s=0.025, to_lag_s=-0.027, min_step_s=0.20, gct_min_s=0.12
    ),
}
