"""Old name of ``python -m realtime.bench.evaluate_detector`` (the benchmarks and evaluations live in :mod:`realtime.bench`)."""

from realtime.bench.evaluate_detector import main

if __name__ == "__main__":
    raise SystemExit(main())
