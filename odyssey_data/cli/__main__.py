"""``python -m odyssey_data.cli``: the ``odyssey-data`` command."""

from odyssey_data.cli.entry import run

run()
