#!/usr/bin/env python3
"""Serve the lab's zones with NSD until stopped: ``scripts/nsd_lab.py --hints /tmp/nsd.root``.

The same as the installed ``resolver-lab nsd`` (resolver/lab/cli.py), kept so a checkout
has it without installing.  ``--help`` says more.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["nsd", *sys.argv[1:]]))
