"""Old name of ``python -m realtime.bench.real`` (the benchmarks and evaluations live in :mod:`realtime.bench`)."""

from realtime.bench.real import main

if __name__ == "__main__":
    raise SystemExit(main())
