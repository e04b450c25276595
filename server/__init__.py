"""The coach companion: stores what the bus carries and serves it to coaches.

``server.store`` keeps athletes, sessions, cues, reps, steps and per-second metrics in SQLite
or PostgreSQL. The package consumes ``stridecue.mqtt`` messages and ``dsp`` types; nothing
imports it but the command line.
"""
