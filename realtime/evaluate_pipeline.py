"""Old name of ``python -m realtime.bench.evaluate_pipeline`` (the benchmarks and evaluations live in :mod:`realtime.bench`)."""

from realtime.bench.evaluate_pipeline import main

if __name__ == "__main__":
    raise SystemExit(main())
