"""``python -m billbox`` is the ``billbox`` command (used by ``billbox up`` for its children)."""

from billbox.cli import main

main()
