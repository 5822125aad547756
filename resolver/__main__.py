"""``python -m resolver``: run the resolver service."""

from resolver.cli import main

raise SystemExit(main())
