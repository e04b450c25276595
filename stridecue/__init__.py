"""The `stridecue` command line, the top layer: the commands, the demo and its team, the live
terminal view and every benchmark. No other package imports it (``tests/test_layering.py``).
"""
