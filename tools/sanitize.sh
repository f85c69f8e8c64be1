#!/usr/bin/env bash
# Build the extension with AddressSanitizer + UndefinedBehaviorSanitizer in a
# scratch copy of the tree and run the tests against it.
#
#   tools/sanitize.sh [pytest args...]     (default: the whole suite)
#
# Python itself is not built with ASan, so the ASan runtime is preloaded;
# leak detection is off because CPython's own allocations would drown it.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastopt-asan.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# the tracked files, as they are in the working tree
(cd "$src" && git ls-files -z | xargs -0 cp --parents -t "$work")
cd "$work"
# the build requirements, in the Python that runs the tests (no build isolation here)
python -m pip install -q "setuptools>=77" "Cython>=3.1" "numpy>=2.0"
FASTOPT_SANITIZE=1 python setup.py -q build_ext --inplace >build.log 2>&1 || { cat build.log; exit 1; }
# make sure the build really is instrumented (the symbols go to a file first:
# `nm | grep -q` fails under pipefail when grep exits early and nm gets SIGPIPE)
nm -D fastopt/_core*.so >symbols.txt
grep -q __asan_report symbols.txt || { echo "extension is not built with ASan" >&2; exit 1; }
grep -q __ubsan_handle symbols.txt || { echo "extension is not built with UBSan" >&2; exit 1; }
asan="$(${CC:-gcc} -print-file-name=libasan.so)"
ubsan="$(${CC:-gcc} -print-file-name=libubsan.so)"
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$work"
python -m pytest -q -p no:cacheprovider "${@:-tests}"
