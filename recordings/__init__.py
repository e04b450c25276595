"""Recordings and sessions: the log format, the sources, trials with ground truth, the session
runner and the accuracy evaluation; what the command line and the companion both run a session on.
"""
