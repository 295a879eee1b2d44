"""``python -m sfmc_emulator``: the same as the ``sfmc-emulator`` console script."""

from .cli import main

main()
