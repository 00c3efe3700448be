#!/usr/bin/env python3
"""Entry shim: `python3 assay.py ...` is the same as `assay ...`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from assay.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
