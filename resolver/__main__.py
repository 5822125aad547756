"""``python -m resolver``: run the resolver service."""

from resolver.serve.cli import main

raise SystemExit(main())
