"""Stridecue's streaming DSP core: numpy and scipy only, no I/O.

Samples in (:class:`~dsp.samples.SampleBlock`), events out (:mod:`dsp.events`): steps with
initial contact and toe-off, per-second metrics, gaps, cues and rep summaries.
"""
