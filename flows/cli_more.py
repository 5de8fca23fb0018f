"""Further ``newsmill`` commands (warehouse maintenance, reprocessing, WARC import, Prefect serving)."""

from __future__ import annotations


def add_commands(sub, wh_help: str) -> None:
    """Register the further sub-commands on ``sub`` (an argparse sub-parsers object)."""
