"""``grids`` / ``python -m grids_sc``: the command line (see :mod:`grids_sc.cli`).

grids quickstart [--gene HLA-DQB1] [--group "CD14+ Monocytes"] [--L 10] [--epochs 20]
grids fit | explain | attribute | evaluate | export INPUT.h5mu ...   (grids STEP --help)
"""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
