"""The coach companion: stores what the bus carries and serves it to coaches.

``server.store`` keeps athletes, sessions, cues, reps, steps and per-second metrics in SQLite
or PostgreSQL. The package consumes ``bus`` messages and ``dsp`` types, and replays uploaded
recordings with ``recordings``; nothing imports it but the command line (``stridecue``).
"""
