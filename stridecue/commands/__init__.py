"""The `stridecue` subcommands, assembled into one app by ``stridecue.cli``."""
