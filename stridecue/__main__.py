"""``python -m stridecue``: the same as the ``stridecue`` command."""

from stridecue.cli import app

app(prog_name="stridecue")
