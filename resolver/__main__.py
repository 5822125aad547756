"""``python -m resolver``: run the resolver service."""

from resolver.ops.cli import main

raise SystemExit(main())
