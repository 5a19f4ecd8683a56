"""``python -m realtime.bench``: see :mod:`realtime.bench.stages`."""

from realtime.bench.stages import main

raise SystemExit(main())
