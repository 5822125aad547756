#!/usr/bin/env python3
"""Trace one resolution from the root hop by hop: ``scripts/trace.py google.com``.

The same as the installed ``resolver-trace`` command (resolver/ops/trace.py);
kept here so a checkout has it where the design put it.  ``--help`` says more.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.ops.trace import main

if __name__ == "__main__":
    sys.exit(main())
