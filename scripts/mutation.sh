#!/usr/bin/env bash
# Mutation testing on request (not in CI: slow). Usage:
#   scripts/mutation.sh [MODULE ...]        # default: every module below; e.g. scripts/mutation.sh heatmaps export
#   MUTATION_DIR=/tmp/mut scripts/mutation.sh heatmaps        # state elsewhere (default .mutation/)
#   MUTATION_TESTS="tests/realtime/test_pose.py" scripts/mutation.sh pose   # other test files (one module)
#   MUTATION_FILTER='engines.export.x_main__mutmut_*' scripts/mutation.sh export  # only these mutants (fnmatch)
# Each module runs in its own copy of the working tree (.mutation/<module>/, git-ignored) with mutmut 3
# (pip install "mutmut==3.8.1", the 'mutation' extra), mutating only that file and running only the test files
# listed for it here (mutmut then runs, per mutant, just the tests that reach the mutated function).
# Prints "module: killed K, survived S, ..." per module and leaves mutmut's state in the copy, so
#   cd .mutation/heatmaps && mutmut results && mutmut show <mutant>
# shows each survivor. Run it niced on a shared machine: nice -n 10 scripts/mutation.sh heatmaps
set -euo pipefail

declare -A SOURCE TESTS
SOURCE[heatmaps]=mca/heatmaps.py;       TESTS[heatmaps]="tests/mca/test_heatmaps.py tests/mca/test_heatmaps_exact.py tests/realtime/test_crop_decode_truth.py"
SOURCE[augment]=mca/data/augment.py;    TESTS[augment]="tests/mca/test_train.py::test_augmented_target_sits_on_the_marked_pixel tests/mca/test_train.py::test_synthetic_dataset_items_are_consistent"
SOURCE[convert_t7]=mca/convert_t7.py;   TESTS[convert_t7]="tests/mca/test_convert_t7_fast.py"
SOURCE[export]=engines/export.py;       TESTS[export]="tests/engines/test_export_fast.py"
SOURCE[trt]=engines/trt.py;             TESTS[trt]="tests/engines/test_trt.py tests/engines/test_trt_fast.py"
SOURCE[pose]=realtime/pose.py;          TESTS[pose]="tests/realtime/test_pose.py tests/realtime/test_crop_decode_truth.py tests/realtime/test_pose_info.py"
SOURCE[sinks]=realtime/sinks.py;        TESTS[sinks]="tests/realtime/test_sinks.py"
SOURCE[tracking]=realtime/tracking.py;  TESTS[tracking]="tests/realtime/test_tracking.py"
SOURCE[pipeline]=realtime/pipeline.py;  TESTS[pipeline]="tests/realtime/test_pipeline.py"
SOURCE[run]=realtime/run.py;            TESTS[run]="tests/realtime/test_run.py"
ALL="heatmaps augment convert_t7 export trt pose sinks tracking pipeline run"

# mutmut forks one child per mutant from a process that has already run the tests: a child that reuses
# PyTorch's OpenMP thread pool from the parent can crash (SIGSEGV, counted as "segfault"), so one thread each
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"

root="$(cd "$(dirname "$0")/.." && pwd)"
base="${MUTATION_DIR:-$root/.mutation}"
command -v mutmut >/dev/null || { echo "error: mutmut not found: pip install 'mutmut==3.8.1'" >&2; exit 2; }
mods=("$@"); [ ${#mods[@]} -eq 0 ] && read -ra mods <<<"$ALL"
for m in "${mods[@]}"; do
  [ -n "${SOURCE[$m]:-}" ] || { echo "error: unknown module '$m' (one of: $ALL)" >&2; exit 2; }
done

if [ -n "${MUTATION_TESTS:-}" ]; then
  [ ${#mods[@]} -eq 1 ] || { echo "error: MUTATION_TESTS needs exactly one module" >&2; exit 2; }
  TESTS[${mods[0]}]="$MUTATION_TESTS"
fi

for m in "${mods[@]}"; do
  work="$base/$m"
  rm -rf "$work" && mkdir -p "$work"
  # tracked and untracked-but-not-ignored files: the tree as it is now, without build outputs or venvs
  (cd "$root" && git ls-files -co --exclude-standard -z | grep -zv '^\.mutation/' | xargs -0 tar cf - 2>/dev/null) \
    | tar xf - -C "$work"
  {
    echo "[mutmut]"
    echo "source_paths ="; for p in mca engines calibration realtime; do echo "    $p"; done
    echo "only_mutate = ${SOURCE[$m]}"
    echo "pytest_add_cli_args_test_selection ="; for t in ${TESTS[$m]}; do echo "    $t"; done
    echo "pytest_add_cli_args ="; echo "    -p"; echo "    no:cacheprovider"; echo "    -q"
  } > "$work/setup.cfg"
  echo "== $m: ${SOURCE[$m]} against ${TESTS[$m]}" >&2
  (cd "$work" && env -u PYTHONPATH mutmut run ${MUTATION_FILTER:+"$MUTATION_FILTER"} >"$work/mutmut-run.log" 2>&1) || {
    echo "$m: mutmut run failed, see $work/mutmut-run.log" >&2; continue; }
  (cd "$work" && env -u PYTHONPATH mutmut export-cicd-stats >/dev/null 2>&1 || true)
  python - "$m" "$work/mutants/mutmut-cicd-stats.json" <<'PY'
import json, sys
m, path = sys.argv[1], sys.argv[2]
s = json.load(open(path))
keys = ["killed", "survived", "total", "no_tests", "timeout", "suspicious", "skipped", "segfault"]
s["not_run"] = s["total"] - sum(s[k] for k in keys if k != "total")  # filtered out (MUTATION_FILTER)
print(f"{m}: " + ", ".join(f"{k} {s[k]}" for k in keys + ["not_run"] if k in s))
PY
done
