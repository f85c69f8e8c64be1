#!/usr/bin/env bash
# Check the wheel build's configuration without building anything:
#   - .github/workflows/*.yml against GitHub's workflow schema (the copy that
#     check-jsonschema ships) and with zizmor, the Actions linter, offline
#     (no GitHub API: pinned commits are not looked up);
#   - shellcheck on the shell scripts, when shellcheck is installed;
#   - [tool.cibuildwheel] in pyproject.toml, read by the cibuildwheel version
#     the workflow pins, which rejects unknown or malformed options, and the
#     wheels it would build on each runner of the workflow.
# Usage: tools/lint_ci.sh (PYTHON picks the interpreter; needs PyPI).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastopt-lint.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$root"

# The cibuildwheel release that wheels.yml pins (from its "# vX.Y.Z" comment).
cibw_version="$(sed -n 's|.*uses: pypa/cibuildwheel@[0-9a-f]\{40\} # v\([0-9.]*\).*|\1|p' .github/workflows/wheels.yml)"
[ -n "$cibw_version" ] || { echo "wheels.yml: no SHA-pinned pypa/cibuildwheel with a version comment"; exit 1; }

"$python" -m venv "$work/venv"
bin="$work/venv/bin"
"$bin/python" -m pip install -q --upgrade pip
"$bin/python" -m pip install -q "check-jsonschema>=0.29" "zizmor>=1.5" "cibuildwheel==$cibw_version"

echo "=== workflows: schema"
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
echo "=== workflows: zizmor"
"$bin/zizmor" --offline --no-progress .github/workflows/
echo "=== workflows: every action pinned to a full commit"
if grep -nE '^\s*-?\s*uses:' .github/workflows/*.yml | grep -vE 'uses: [^@ ]+@[0-9a-f]{40}( |$)'; then
    echo "actions above are not pinned to a commit"; exit 1
fi

if command -v shellcheck >/dev/null; then
    echo "=== shellcheck"
    shellcheck .ci/run tools/*.sh
else
    echo "=== shellcheck: not installed, skipped"
fi

echo "=== cibuildwheel $cibw_version: configuration and build identifiers"
for target in linux:x86_64 linux:aarch64 macos:x86_64 macos:arm64 windows:AMD64 windows:ARM64; do
    ids="$(CIBW_ARCHS="${target#*:}" "$bin/cibuildwheel" --platform "${target%%:*}" --print-build-identifiers .)"
    printf '%-16s %2d wheels: %s\n' "$target" "$(wc -w <<<"$ids")" "$(tr '\n' ' ' <<<"$ids")"
    [ -n "$ids" ] || { echo "no wheels for $target"; exit 1; }
done
echo "lint ok"
