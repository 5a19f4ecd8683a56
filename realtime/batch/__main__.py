"""``python -m realtime.batch``: see :mod:`realtime.batch.cli`."""

from realtime.batch.cli import main

raise SystemExit(main())
