#!/usr/bin/env python3
"""Entry shim: `python3 assay.py ...` is the same as `assay ...`; also the zipapp's __main__.py.

From assay.pyz (build_zipapp.sh) it first sets up the archive's bytecode cache and the finder that
extracts the native modules (lupa) on their first import; see assay/_zipapp.py. From a checkout
that is a no-op.
"""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

from assay._zipapp import install  # noqa: E402

install()

from assay.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
