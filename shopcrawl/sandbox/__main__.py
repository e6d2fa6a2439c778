"""``python -m shopcrawl.sandbox``: see :mod:`shopcrawl.sandbox.server`."""

from shopcrawl.sandbox.server import main

raise SystemExit(main())
