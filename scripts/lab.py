#!/usr/bin/env python3
"""Run the offline lab in the foreground: ``scripts/lab.py --hints /tmp/lab.root``.

The same as the installed ``resolver-lab`` command (resolver/lab/cli.py), kept so a
checkout has it without installing.  ``--help`` says more.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
