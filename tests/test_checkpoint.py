"""Tests for fastopt.save / fastopt.load (fastopt/checkpoint.py)."""

import base64
import collections
import contextlib
import fractions
import math
import os
import pickle
import re
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastopt
from conftest import run_isolated
from fastopt import checkpoint

# The directory holding the fastopt package, for child interpreters.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint.__file__)))
HEADER = b"FASTOPT\0" + struct.pack("<I", 1)
TEMP_NAME = re.compile(r"\.ckpt\.[0-9a-f]{16}\.tmp\Z")


def float_bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def float_from_bits(b):
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def assert_same(a, b, where="root"):
    """Assert that `b` equals `a` in value, type, dtype, key order and float bits."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert len(a) == len(b), where
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            assert_same(ka, kb, f"{where}: key {ka!r}")
            assert_same(va, vb, f"{where}[{ka!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (va, vb) in enumerate(zip(a, b)):
            assert_same(va, vb, f"{where}[{i}]")
    elif isinstance(a, float):
        assert float_bits(a) == float_bits(b), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype.str == b.dtype.str, f"{where}: {a.dtype.str} != {b.dtype.str}"
        assert a.shape == b.shape, f"{where}: {a.shape} != {b.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def roundtrip(obj, path):
    fastopt.save(obj, path)
    return fastopt.load(path)


def craft(body, version=1):
    """A file with a valid header and checksum around `body`."""
    data = b"FASTOPT\0" + struct.pack("<I", version) + body
    return data + struct.pack("<I", zlib.crc32(data))


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("checkpoints")


# --------------------------------------------------------------------------
# The comparison helper itself must be strict, or the round trips prove little.


@pytest.mark.parametrize(
    "a, b",
    [
        (1, True),
        (1, 1.0),
        (0.0, -0.0),
        (float("nan"), float_from_bits(float_bits(float("nan")) | 1)),
        ((1,), [1]),
        ({1: 0}, {"1": 0}),
        ({"a": 0, "b": 1}, {"b": 1, "a": 0}),
        (np.float32(1), np.float64(1)),
        (np.zeros(2, "<f4"), np.zeros(2, ">f4")),
        (np.zeros(()), np.zeros(1)),
        ({"x": collections.OrderedDict()}, {"x": {}}),
    ],
)
def test_assert_same_is_strict(a, b):
    with pytest.raises(AssertionError):
        assert_same(a, b)


# --------------------------------------------------------------------------
# Round trips


VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    255,
    -256,
    2**63,
    -(2**63) - 1,
    2**1000 + 7,
    -(3**500),
    0.0,
    -0.0,
    1.5,
    math.inf,
    -math.inf,
    math.nan,
    float_from_bits(0x7FF0000000000001),  # signalling NaN
    float_from_bits(0xFFF8DEADBEEF0001),  # negative NaN with a payload
    float_from_bits(1),  # smallest subnormal
    "",
    "state",
    "ünïcødé ✓ 𝔘",
    "\ud800 lone surrogate",
    "nul\0inside",
    [],
    (),
    {},
    (1,),
    [1, (2, [3, (4,)])],
    {0: "int key", "0": "str key", -5: None, 2**80: "big key"},
    collections.OrderedDict([("b", 1), ("a", 2)]),
    collections.Counter({30: 1, 80: 2}),
    np.float32(1.5),
    np.float16(-0.0),
    np.float64(math.nan),
    np.int8(-3),
    np.uint64(2**64 - 1),
    np.bool_(True),
    np.complex64(1 - 2j),
    np.longdouble(1) / 3,
    np.array(2.5),
    np.array(True),
    np.zeros((0,), np.float32),
    np.zeros((3, 0, 2), np.int16),
    np.arange(24, dtype=">f8").reshape(2, 3, 4),
    np.arange(6, dtype="<u2").reshape(3, 2),
    np.array([True, False, True]),
    np.array([1 + 2j, -0.0 - 1j], np.complex128),
    np.array([math.nan, -0.0, math.inf], np.float16),
    np.array([1, 2], np.longdouble),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_roundtrip_values(value, tmp_path):
    tree = {"v": value, "in_list": [value], "in_tuple": (value, value)}
    assert_same(tree, roundtrip(tree, tmp_path / "ckpt"))


def test_realistic_optimizer_state_dict(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    b = rng.standard_normal(32)
    sd = {
        "state": {
            0: {"step": 3.0, "exp_avg": w * 0.1, "exp_avg_sq": w * w, "max_exp_avg_sq": w * w},
            1: {"step": 3.0, "exp_avg": b * 0.1, "exp_avg_sq": b * b, "max_exp_avg_sq": b * b},
        },
        "param_groups": [
            {
                "lr": 1e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 1e-2,
                "amsgrad": True,
                "maximize": False,
                "foreach": None,
                "initial_lr": 1e-3,
                "params": [0, 1],
            }
        ],
    }
    loaded = roundtrip(sd, tmp_path / "adam.ckpt")
    assert_same(sd, loaded)
    assert list(loaded["state"]) == [0, 1]
    exp_avg = loaded["state"][0]["exp_avg"]
    assert exp_avg.flags.c_contiguous and exp_avg.flags.writeable and exp_avg.flags.owndata


def test_layouts_come_back_c_contiguous(tmp_path):
    base = np.arange(60, dtype=np.float64).reshape(6, 10)
    views = {"fortran": np.asfortranarray(base), "strided": base[::2, ::3], "transposed": base.T,
             "negative": base[::-1], "readonly": np.frombuffer(base.tobytes())}
    loaded = roundtrip(views, tmp_path / "ckpt")
    for key, view in views.items():
        np.testing.assert_array_equal(loaded[key], view)
        assert loaded[key].flags.c_contiguous and loaded[key].flags.writeable, key


def test_shared_arrays_load_as_independent_copies(tmp_path):
    a = np.zeros(3)
    loaded = roundtrip([a, a], tmp_path / "ckpt")
    loaded[0][0] = 1
    assert loaded[1][0] == 0


finite_or_not_floats = st.floats() | st.integers(0, 2**64 - 1).map(float_from_bits)
numeric_dtypes = (
    hnp.boolean_dtypes()
    | hnp.integer_dtypes(endianness="?")
    | hnp.unsigned_integer_dtypes(endianness="?")
    | hnp.floating_dtypes(endianness="?", sizes=(16, 32, 64))
    | hnp.complex_number_dtypes(endianness="?")
)


@st.composite
def raw_arrays(draw, max_dims=3):
    """Arrays of any numeric dtype and shape holding arbitrary bit patterns."""
    dtype = draw(numeric_dtypes)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=4))
    nbytes = math.prod(shape) * dtype.itemsize
    data = draw(st.binary(min_size=nbytes, max_size=nbytes))
    return np.frombuffer(data, dtype).reshape(shape).copy()


numpy_scalars = raw_arrays(max_dims=0).map(lambda a: a[()])
keys = st.recursive(
    st.none() | st.booleans() | st.integers() | finite_or_not_floats | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3).map(tuple),
    max_leaves=4,
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**300), 2**300)
    | finite_or_not_floats
    | st.text()
    | raw_arrays()
    | numpy_scalars
)
trees = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4)
    | st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(keys, children, max_size=4)
    | st.dictionaries(keys, children, max_size=3).map(collections.OrderedDict),
    max_leaves=24,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_roundtrip_random_trees(tree, shared_dir):
    assert_same(tree, roundtrip(tree, shared_dir / "random.ckpt"))


@settings(max_examples=100, deadline=None)
@given(bits=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=8))
def test_roundtrip_float_bit_patterns(bits, shared_dir):
    floats = [float_from_bits(b) for b in bits]
    arrays = np.array(bits, np.uint64).view(np.float64)
    tree = {"f": floats, "a": arrays, "s": [np.float64(x) for x in arrays]}
    loaded = roundtrip(tree, shared_dir / "bits.ckpt")
    assert [float_bits(x) for x in loaded["f"]] == bits
    assert loaded["a"].view(np.uint64).tolist() == bits
    assert [int(x.view(np.uint64)) for x in loaded["s"]] == bits


def test_depth_limit_is_the_same_for_save_and_load(tmp_path):
    deep = []
    for _ in range(checkpoint.MAX_DEPTH - 1):
        deep = [deep]
    assert_same(deep, roundtrip(deep, tmp_path / "ckpt"))
    with pytest.raises(ValueError, match="deeper than 100"):
        fastopt.save([deep], tmp_path / "too-deep")
    # A file nesting too deep (written by hand) is refused too.
    with open(tmp_path / "crafted", "wb") as f:
        f.write(craft((b"l" + struct.pack("<Q", 1)) * 101 + b"l" + struct.pack("<Q", 0)))
    with pytest.raises(ValueError, match="deeper than 100"):
        fastopt.load(tmp_path / "crafted")


def test_container_that_contains_itself(tmp_path):
    loop = {"a": []}
    loop["a"].append(loop)
    with pytest.raises(ValueError, match=re.escape("state_dict['a'][0]: it contains itself")):
        fastopt.save(loop, tmp_path / "ckpt")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------
# Unsupported values


class MyDict(dict):
    pass


@pytest.mark.parametrize(
    "obj, where, what",
    [
        ({"state": {0: {"foo": object()}}}, "state_dict['state'][0]['foo']", "object"),
        ({"f": lambda: 0}, "state_dict['f']", "function"),
        ({"s": {1, 2}}, "state_dict['s']", "set"),
        ({"b": [b"bytes"]}, "state_dict['b'][0]", "bytes"),
        ({"c": 1j}, "state_dict['c']", "complex"),
        (("a", [None, fractions.Fraction(1, 2)]), "state_dict[1][1]", "fractions.Fraction"),
        ({"d": MyDict()}, "state_dict['d']", "MyDict"),
        ({"o": np.array([1, None], dtype=object)}, "state_dict['o']", "dtype object"),
        ({"r": np.zeros(2, "i4,f4")}, "state_dict['r']", "dtype"),
        ({"u": np.array(["text"])}, "state_dict['u']", "dtype <U4"),
        ({"t": np.datetime64("2020-01-01")}, "state_dict['t']", "dtype datetime64"),
        ({"m": np.ma.masked_array([1, 2], mask=[0, 1])}, "state_dict['m']", "MaskedArray"),
        ({b"k": 0}, "state_dict: key b'k'", "keys must be str, int, float, bool, None or"),
        ({"g": {np.int64(1): 1}}, "state_dict['g']: key", "type numpy.int64; keys must be"),
        ([{(1, frozenset()): 3}], "state_dict[0]: key (1, frozenset())", "keys must be"),
    ],
)
def test_unsupported_values_raise_typeerror_naming_the_path(obj, where, what, tmp_path):
    with pytest.raises(TypeError, match=re.escape(where)) as info:
        fastopt.save(obj, tmp_path / "ckpt")
    assert what in str(info.value)
    assert os.listdir(tmp_path) == []  # checked before any file is created


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    fastopt.save({"version": 1}, path)
    with pytest.raises(TypeError):
        fastopt.save({"version": 2, "bad": object()}, path)

    def broken_fsync(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        fastopt.save({"version": 3}, path)
    monkeypatch.undo()
    assert fastopt.load(path) == {"version": 1}
    assert os.listdir(tmp_path) == ["ckpt"]


# --------------------------------------------------------------------------
# Dict keys


KEYS = [None, True, False, 7, -(2**80), 1.5, -2.5, math.inf, math.nan, "s", (), (1, 2.0),
        (None, (True, "x"), (-0.0,)), ((((3,),),),)]


@pytest.mark.parametrize("kind", [dict, collections.OrderedDict, collections.Counter])
def test_keys_come_back_with_their_types(kind, tmp_path):
    tree = {"d": kind({key: i for i, key in enumerate(KEYS)})}
    assert len(tree["d"]) == len(KEYS)
    loaded = roundtrip(tree, tmp_path / "ckpt")
    assert_same(tree, loaded)
    assert [type(key) for key in loaded["d"]] == [type(key) for key in KEYS]


def test_torch_style_checkpoint_dict(tmp_path):
    """What torch.save users put in a checkpoint: keys of several types side by side."""
    tree = {"epoch": 3, 0.5: "warmup", True: None, None: [1], ("layer", 0): {"lr": 0.1},
            "best": {(1, 1.0): np.zeros(2)}}
    loaded = roundtrip(tree, tmp_path / "ckpt")
    assert_same(tree, loaded)
    assert list(loaded) == ["epoch", 0.5, True, None, ("layer", 0), "best"]


# A file written by fastopt 0.1.0 (before float, bool, None and tuple keys were
# accepted), and the state dict it holds.
OLD_FILE = base64.b64decode("""
RkFTVE9QVAABAAAAZAUAAAAAAAAAcwUAAAAAAAAAc3RhdGVkAQAAAAAAAABpAQAAAAAAAAAAZAUA
AAAAAAAAcwQAAAAAAAAAc3RlcGYAAAAAAAAIQHMHAAAAAAAAAGV4cF9hdmdhAzxmNAEDAAAAAAAA
AAAAAAAAAIA/AAAAQHMBAAAAAAAAAG5nAzxpOAD5/////////3MBAAAAAAAAAHphAzxmOAAAAAAA
AAD4P3MDAAAAAAAAAGJpZ2EDPnUyAgIAAAAAAAAAAgAAAAAAAAAAAAABAAIAA3MMAAAAAAAAAHBh
cmFtX2dyb3Vwc2wBAAAAAAAAAGQHAAAAAAAAAHMCAAAAAAAAAGxyZvyp8dJNYlA/cwUAAAAAAAAA
YmV0YXN0AgAAAAAAAABmzczMzMzM7D9mK4cW2c737z9zBgAAAAAAAABwYXJhbXNsAQAAAAAAAABp
AQAAAAAAAAAAcwcAAAAAAAAAYW1zZ3JhZFRzCAAAAAAAAABtYXhpbWl6ZUZzBwAAAAAAAABmb3Jl
YWNoTnMEAAAAAAAAAG5hbWVzBgAAAAAAAAB3w6ninJNzCgAAAAAAAABtaWxlc3RvbmVzYwIAAAAA
AAAAaQEAAAAAAAAAHmkBAAAAAAAAAAFpAQAAAAAAAABQaQEAAAAAAAAAAnMFAAAAAAAAAG9yZGVy
bwIAAAAAAAAAcwEAAAAAAAAAYmkBAAAAAAAAAAFzAQAAAAAAAABhaQkAAAAAAAAAAAAAAAAAAADA
cwMAAAAAAAAAbmFuZgAAAAAAAPj/0cA/Rg==
""")
OLD_TREE = {
    "state": {0: {"step": 3.0, "exp_avg": np.arange(3, dtype="<f4"), "n": np.int64(-7),
                  "z": np.array(1.5), "big": np.arange(4, dtype=">u2").reshape(2, 2)}},
    "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0], "amsgrad": True,
                      "maximize": False, "foreach": None, "name": "wé✓"}],
    "milestones": collections.Counter({30: 1, 80: 2}),
    "order": collections.OrderedDict([("b", 1), ("a", -(2**70))]),
    "nan": float_from_bits(0xFFF8000000000000),
}


def test_files_of_the_first_release_still_load(tmp_path):
    assert_same(OLD_TREE, load_bytes(OLD_FILE, tmp_path))
    fastopt.save(OLD_TREE, tmp_path / "new")
    assert (tmp_path / "new").read_bytes() == OLD_FILE  # the encoding did not change


# --------------------------------------------------------------------------
# Paths and files


@pytest.mark.parametrize("kind", [str, Path, os.fsencode])
def test_path_types(kind, tmp_path):
    path = kind(str(tmp_path / "ckpt"))
    fastopt.save({"a": 1}, path)
    fastopt.save({"a": 2}, path)  # replaces the existing file
    assert fastopt.load(path) == {"a": 2}
    assert os.listdir(tmp_path) == ["ckpt"]  # no temporary file left behind


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions and symlinks")
def test_file_mode_and_symlink_like_a_plain_open(tmp_path):
    fastopt.save({}, tmp_path / "ckpt")
    (tmp_path / "plain").write_bytes(b"")
    assert (tmp_path / "ckpt").stat().st_mode == (tmp_path / "plain").stat().st_mode
    os.mkdir(tmp_path / "runs")
    os.symlink(os.path.join("runs", "target"), tmp_path / "latest")
    fastopt.save({"x": 1}, tmp_path / "latest")
    assert (tmp_path / "latest").is_symlink()
    assert fastopt.load(tmp_path / "runs" / "target") == {"x": 1}


def test_load_ignores_stale_temporary_files(tmp_path):
    path = tmp_path / "ckpt"
    fastopt.save({"x": 1}, path)
    stale = tmp_path / ".ckpt.0123456789abcdef.tmp"
    stale.write_bytes(HEADER + b"l")  # what a killed save can leave behind
    assert fastopt.load(path) == {"x": 1}
    fastopt.save({"x": 2}, path)
    assert fastopt.load(path) == {"x": 2}


def special_files(tmp_path):
    """Paths to files that are not regular files, each made where it can be."""
    specials = {"directory": tmp_path / "dir"}
    os.mkdir(specials["directory"])
    if hasattr(os, "mkfifo"):
        specials["fifo"] = tmp_path / "fifo"
        os.mkfifo(specials["fifo"])
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # a private copy of /dev/null
        with contextlib.suppress(PermissionError):
            os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
            specials["device"] = tmp_path / "null"
    return specials


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_load_of_a_fifo_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = run_isolated(
        f"""
        import fastopt
        try:
            fastopt.load({str(fifo)!r})
        except ValueError as e:
            print(e)
        """,
        timeout=30,
    )
    assert "not a regular file" in out


@pytest.mark.skipif(os.name == "nt", reason="POSIX special files and symlinks")
def test_load_refuses_what_is_not_a_regular_file(tmp_path):
    specials = special_files(tmp_path)
    specials["device"] = os.devnull  # reading it is harmless
    for kind, path in specials.items():
        with pytest.raises(ValueError, match="not a regular file"):
            fastopt.load(path)
        os.symlink(path, tmp_path / f"link-to-{kind}")
        with pytest.raises(ValueError, match="not a regular file"):
            fastopt.load(tmp_path / f"link-to-{kind}")


@pytest.mark.skipif(os.name == "nt", reason="POSIX special files and symlinks")
def test_save_replaces_only_regular_files(tmp_path):
    specials = special_files(tmp_path)
    for kind, path in specials.items():
        mode = os.lstat(path).st_mode
        os.symlink(path, tmp_path / f"link-to-{kind}")
        for target in (path, tmp_path / f"link-to-{kind}"):
            with pytest.raises(ValueError, match="not a regular file"):
                fastopt.save({"a": 1}, target)
        assert os.lstat(path).st_mode == mode, kind  # still what it was
        assert os.path.islink(tmp_path / f"link-to-{kind}")
    assert sorted(os.listdir(tmp_path)) == sorted(
        [p.name for p in specials.values()] + [f"link-to-{k}" for k in specials]
    )  # no temporary file was made


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444, 0o2750])
def test_resave_keeps_the_mode(mode, tmp_path):
    path = tmp_path / "ckpt"
    fastopt.save({"v": 1}, path)
    os.chmod(path, mode)
    fastopt.save({"v": 2}, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert fastopt.load(path) == {"v": 2}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_resave_keeps_the_owner(tmp_path):
    path = tmp_path / "ckpt"
    fastopt.save({"v": 1}, path)
    os.chown(path, 1234, 5678)
    os.chmod(path, 0o4640)  # fchown clears set-id bits; the mode must come back whole
    fastopt.save({"v": 2}, path)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4640)


@pytest.mark.skipif(os.name == "nt", reason="POSIX umask")
def test_new_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        fastopt.save({}, tmp_path / "ckpt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "ckpt").st_mode) == 0o640


@pytest.mark.parametrize("name", ["c" * 234, "c" * 255, "é" * 127 + "x", "c" * 231 + "✓" * 8])
def test_longest_file_names(name, tmp_path, monkeypatch):
    assert 234 <= len(os.fsencode(name)) <= 255  # up to the limit of common file systems
    temp_names = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: temp_names.append(a) or replace(a, b))
    for v in range(2):
        fastopt.save({"v": v}, tmp_path / name)
    assert fastopt.load(tmp_path / name) == {"v": 1}
    assert os.listdir(tmp_path) == [name]
    for temp in temp_names:
        temp = os.path.basename(temp)
        assert temp.startswith(".c" if name[0] == "c" else ".é") and temp.endswith(".tmp")
        assert len(os.fsencode(temp)) <= 255


# --------------------------------------------------------------------------
# Damaged and foreign files

SMALL = {
    "state": {
        0: {"step": 3.0, "exp_avg": np.arange(3, dtype=np.float32), "n": np.int64(7),
            "z": np.array(1.5)}
    },
    "param_groups": [
        {"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "flag": True, "none": None}
    ],
    "big": -(2**70),
    "counts": collections.Counter({3: 1}),
}


@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "small.ckpt"
    fastopt.save(SMALL, path)
    return path.read_bytes()


def load_bytes(data, tmp_path):
    path = tmp_path / "probe"
    path.write_bytes(data)
    return fastopt.load(path)


def test_truncated_at_every_cut_point(small_file, tmp_path):
    assert_same(SMALL, load_bytes(small_file, tmp_path))
    for cut in range(len(small_file)):
        with pytest.raises(ValueError, match="cannot load"):
            load_bytes(small_file[:cut], tmp_path)


def test_any_changed_byte_is_detected(small_file, tmp_path):
    for i in range(len(small_file)):
        for mask in (0x01, 0x80, 0xFF):
            data = bytearray(small_file)
            data[i] ^= mask
            with pytest.raises(ValueError, match="cannot load"):
                load_bytes(bytes(data), tmp_path)


def test_extra_bytes_are_detected(small_file, tmp_path):
    # The checksum, checked before anything is decoded, is then not at the end.
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_bytes(small_file + b"\0", tmp_path)
    # Bytes after a complete checkpoint, followed by a checksum that matches.
    with pytest.raises(ValueError, match="unexpected bytes"):
        load_bytes(craft(small_file[len(HEADER) :] + b"\0"), tmp_path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_bodies_with_valid_checksums_only_raise_valueerror(small_file, tmp_path, data):
    """The parser itself survives any body, even one whose checksum is right."""
    body = small_file[len(HEADER) : -4]
    start = data.draw(st.integers(0, len(body)))
    stop = data.draw(st.integers(start, min(len(body), start + 16)))
    body = body[:start] + data.draw(st.binary(max_size=16)) + body[stop:]
    try:
        load_bytes(craft(body), tmp_path)
    except ValueError:
        pass


@pytest.mark.parametrize(
    "body, message",
    [
        (b"a\x03<f8\x01" + struct.pack("<Q", 2**40), "truncated"),
        (b"a\x03<f8\x02" + struct.pack("<QQ", 2**62, 2**62), "truncated"),
        (b"a\x03<f8\x02" + struct.pack("<QQ", 0, 2**63), "invalid array shape"),
        (b"a\x03<f8\x41" + struct.pack("<65Q", *[1] * 65) + bytes(8), "invalid array shape"),
        (b"l" + struct.pack("<Q", 2**62), "truncated"),
        (b"s" + struct.pack("<Q", 2**62), "truncated"),
        (b"i" + struct.pack("<Q", 2**63), "truncated"),
        (b"a\x03|O8\x00", "dtype"),
        (b"a\x02V8\x00", "dtype"),
        (b"a\x03<f3\x00", "dtype"),
        (b"g\x03<f8\x01" + struct.pack("<Q", 1) + bytes(8), "scalar"),
        (b"d" + struct.pack("<Q", 1) + b"l" + bytes(8) + b"N", "dict key"),
        (b"d" + struct.pack("<Q", 1) + b"t\1" + bytes(7) + b"l" + bytes(8) + b"N", "dict key"),
        (b"d" + struct.pack("<Q", 2) + (b"s" + struct.pack("<Q", 0) + b"N") * 2, "duplicate"),
        (b"s" + struct.pack("<Q", 1) + b"\xff", "utf-8"),
        (b"P", "unknown tag"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_lying_fields_raise_valueerror(body, message, tmp_path):
    """Lengths, counts and dtypes that lie fail cleanly, without allocating."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message):
            load_bytes(craft(body), tmp_path)
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()


def test_newer_format_version(tmp_path):
    with pytest.raises(ValueError, match="unsupported checkpoint format version 2"):
        load_bytes(craft(b"N", version=2), tmp_path)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"FASTOPT",
        b"FASTOPT\0",
        pickle.dumps(SMALL),
        pickle.dumps({"a": 1}, protocol=0),
        b'{"state": {}, "param_groups": []}',
        np.random.default_rng(0).bytes(4096),
        b"PK\x03\x04" + bytes(100),
    ],
    ids=["empty", "short-magic", "magic-only", "pickle", "pickle-0", "json", "random", "zip"],
)
def test_foreign_files(data, tmp_path):
    with pytest.raises(ValueError, match="cannot load"):
        load_bytes(data, tmp_path)


def test_npy_file_is_foreign(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not a fastopt checkpoint"):
        fastopt.load(tmp_path / "a.npy")


class _Payload:
    """Unpickling this creates the file `marker`: proof that pickle ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_never_unpickles(tmp_path, monkeypatch):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(str(control)))).close()
    assert control.exists()  # the payload is live

    marker = tmp_path / "marker"
    payload = pickle.dumps(_Payload(str(marker)))
    candidates = [
        payload,
        HEADER + payload,
        craft(payload),
        craft(b"i" + struct.pack("<Q", len(payload)) + payload),
    ]
    for data in candidates:
        try:
            load_bytes(data, tmp_path)
        except ValueError:
            pass
    # A payload stored as a string comes back as that string.
    text = payload.decode("latin-1")
    assert roundtrip({"text": text}, tmp_path / "ckpt") == {"text": text}

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    assert_same(SMALL, roundtrip(SMALL, tmp_path / "ckpt"))
    assert not marker.exists()


# --------------------------------------------------------------------------
# Memory


def test_no_needless_copies(tmp_path):
    big = np.ones(2**22, np.float64)  # 32 MiB
    tracemalloc.start()
    try:
        fastopt.save({"big": big, "step": 1}, tmp_path / "ckpt")
        save_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        loaded = fastopt.load(tmp_path / "ckpt")
        load_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert save_peak < 2**20
    assert big.nbytes <= load_peak < big.nbytes + 2**20
    np.testing.assert_array_equal(loaded["big"], big)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS, /proc")
def test_sparse_file_announcing_a_gigabyte_is_refused_without_allocating_it(tmp_path):
    path = tmp_path / "sparse.ckpt"
    with open(path, "wb") as f:
        f.write(HEADER + b"a\x03<f8\x01" + struct.pack("<Q", 2**27))  # 1 GiB of float64
        f.truncate(f.tell() + 2**30 + 4)  # a hole: the bytes read as zeros, none stored
    # The child may map 256 MiB more than it has at the start: far from a gigabyte.
    out = run_isolated(
        f"""
        import resource, fastopt
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm * 1024 + 2**28, resource.RLIM_INFINITY))
        try:
            fastopt.load({str(path)!r})
        except ValueError as e:
            print(e)
        """,
        timeout=120,
    )
    os.unlink(path)  # a gigabyte where the file system stores no holes
    assert "checksum mismatch" in out


# Files of many tiny values: the worst cases for memory per byte of file.
TINY_VALUES = {
    "OrderedDict": collections.OrderedDict({None: None}),
    "Counter": collections.Counter({None: 0}),
    "dict": {None: None},
    "tuple key": {(None,): None},
    "0-d array": np.array(True),
    "list": [],
    "tuple": (None,),
    "float": 0.5,
    "str": "ab",
}
BYTES_PER_BYTE = 48  # the bound in the docstring of fastopt.checkpoint


def test_memory_used_by_load_is_bounded_by_the_file(tmp_path):
    """Peak memory of load, measured in a fresh process, against the documented bound."""
    files = {}
    for name, value in TINY_VALUES.items():
        files[name] = tmp_path / f"{len(files)}.ckpt"
        fastopt.save([value] * 5000, files[name])
    wide = "\U0001f600" + "a" * 10**6  # one character makes the whole str 4 bytes a character
    files["wide str"] = tmp_path / "wide.ckpt"
    fastopt.save([wide] * 4, files["wide str"])
    arrays = {"exp_avg": np.ones(2**21), "exp_avg_sq": np.ones(2**20, np.float32)}
    files["arrays"] = tmp_path / "arrays.ckpt"
    fastopt.save({"state": {0: arrays}, "param_groups": [{"lr": 0.1, "params": [0]}]},
                 files["arrays"])
    out = run_isolated(
        f"""
        import tracemalloc, fastopt
        for path in {[str(p) for p in files.values()]!r}:
            tracemalloc.start()
            loaded = fastopt.load(path)
            print(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            del loaded
        """,
        timeout=300,
    )
    peaks = dict(zip(files, map(int, out.split())))
    array_bytes = sum(a.nbytes for a in arrays.values())
    for name, path in files.items():
        size = os.path.getsize(path)
        data = array_bytes if name == "arrays" else 0
        bound = data + BYTES_PER_BYTE * (size - data) + 2**20
        assert peaks[name] < bound, (name, peaks[name], size)
    # The bound is not loose for the worst case: one-item OrderedDicts.
    assert peaks["OrderedDict"] > BYTES_PER_BYTE / 2 * os.path.getsize(files["OrderedDict"])


# --------------------------------------------------------------------------
# Saving arrays that another thread changes


def test_checksum_covers_the_bytes_written_when_an_array_changes(tmp_path, monkeypatch):
    """A write to the array lands just after each checksum is computed."""
    a = np.zeros(2**17)  # 1 MiB: several write buffers
    crc32 = zlib.crc32

    def crc32_then_change(data, value=0):
        crc = crc32(data, value)
        a[:] += 1
        return crc

    monkeypatch.setattr(zlib, "crc32", crc32_then_change)
    fastopt.save({"a": a}, tmp_path / "ckpt")
    monkeypatch.undo()
    loaded = fastopt.load(tmp_path / "ckpt")["a"]
    # Each part was saved as it was when it was copied: 0 first, more later on.
    assert loaded[0] == 0 and loaded[-1] > 0 and (np.diff(loaded) >= 0).all()


def test_save_while_another_thread_writes_the_arrays(tmp_path):
    """Every save returns a file that loads, each element a value it held meanwhile."""
    a = np.zeros(2**18)  # 2 MiB, written by NumPy without the GIL
    b = np.zeros(2**14, np.float32)
    count = {"started": 0, "done": 0}
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            count["started"] += 1
            a[:] = count["started"]
            b[:] = -count["started"]
            count["done"] = count["started"]

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        overlapped = 0
        for i in range(20):
            low = count["done"]
            fastopt.save({"a": a, "b": b, "i": i}, tmp_path / "ckpt")
            high = count["started"]
            overlapped += high > low
            loaded = fastopt.load(tmp_path / "ckpt")
            assert loaded["i"] == i
            for values in (loaded["a"], -loaded["b"].astype(np.float64)):
                assert ((low <= values) & (values <= high) & (values % 1 == 0)).all()
    finally:
        stop.set()
        thread.join()
    assert overlapped > 10  # the writer did run during the saves


# --------------------------------------------------------------------------
# Crash safety

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from fastopt.checkpoint import save
path, n, version = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = np.zeros(n, np.float32)
print("ready", flush=True)
while True:
    version += 1
    data[::4096] = version
    save({"version": version, "data": data}, path)
    print(version, flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_kill_during_save_leaves_a_complete_checkpoint(tmp_path):
    """A child saving 200 MB checkpoints in a loop is killed at random moments."""
    path = tmp_path / "ckpt"
    n = 50 * 2**20  # float32
    rng = np.random.default_rng()
    last = 0
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, PACKAGE_ROOT, str(path), str(n), str(last)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            out = [proc.stdout.readline()]
            assert out == ["ready\n"], "child failed to start"
            if not path.exists():
                out.append(proc.stdout.readline())  # let the first save complete
            time.sleep(rng.uniform(0.0, 0.6))  # about two saves long
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        out += proc.stdout.read().split()
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        saved = [int(line) for line in out[1:]]
        assert saved == list(range(last + 1, last + 1 + len(saved)))
        loaded = fastopt.load(path)
        # The last save reported complete, or the one killed just after its rename.
        assert loaded["version"] in (last + len(saved), last + len(saved) + 1)
        last = loaded["version"]
        data = loaded["data"]
        assert data.dtype == np.float32 and data.shape == (n,)
        assert (data[::4096] == last).all() and np.count_nonzero(data) == data[::4096].size
    stale = [name for name in os.listdir(tmp_path) if name != "ckpt"]
    assert all(TEMP_NAME.match(name) for name in stale), stale
    for name in os.listdir(tmp_path):  # do not keep a gigabyte of test files around
        os.unlink(tmp_path / name)


# --------------------------------------------------------------------------
# torch


def test_import_and_use_never_import_torch(tmp_path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, fastopt; "
        "fastopt.save({'a': np.zeros(3), 'b': [1, (2.0,)]}, sys.argv[2]); "
        "assert fastopt.load(sys.argv[2])['b'] == [1, (2.0,)]; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code, PACKAGE_ROOT, str(tmp_path / "ckpt")], check=True)


def to_numpy(tree):
    torch = sys.modules["torch"]
    if isinstance(tree, torch.Tensor):
        return tree.detach().numpy()
    if isinstance(tree, dict):
        return type(tree)({k: to_numpy(v) for k, v in tree.items()})
    if isinstance(tree, (list, tuple)):
        return type(tree)(map(to_numpy, tree))
    return tree


def test_torch_tensors_load_as_numpy(tmp_path):
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tree = {
        "t": t,
        "step": torch.tensor(5.0),
        "col": t.T,
        "i": torch.tensor([1, 2], dtype=torch.int64),
        "p": torch.nn.Parameter(torch.ones(2)),
        "conj": torch.tensor([1 + 2j]).conj(),
    }
    loaded = roundtrip(tree, tmp_path / "ckpt")
    assert all(type(v) is np.ndarray for v in loaded.values())
    assert loaded["step"].shape == () and loaded["step"].dtype == np.float32
    np.testing.assert_array_equal(loaded["col"], t.T.numpy())
    np.testing.assert_array_equal(loaded["conj"], np.array([1 - 2j], np.complex64))
    assert_same(tree["i"].numpy(), loaded["i"])


def test_torch_optimizer_and_scheduler_state_dicts(tmp_path):
    torch = pytest.importorskip("torch")
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    opt = torch.optim.Adam(params, lr=1e-2, amsgrad=True)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
    for _ in range(3):
        opt.zero_grad()
        sum((p * p).sum() for p in params).backward()
        opt.step()
        sched.step()
    sd = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    loaded = roundtrip(sd, tmp_path / "ckpt")
    assert_same(to_numpy(sd), loaded)
    assert type(loaded["scheduler"]["milestones"]) is collections.Counter


@pytest.mark.parametrize(
    "make, what",
    [
        (lambda torch: torch.zeros(2, device="meta"), "device meta"),
        (lambda torch: torch.zeros(2, dtype=torch.float8_e4m3fn), "no NumPy equivalent"),
        (lambda torch: torch.Size([2, 3]), "torch.Size"),
    ],
)
def test_torch_values_without_numpy_form(make, what, tmp_path):
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=re.escape("state_dict['state'][0]")) as info:
        fastopt.save({"state": {0: make(torch)}}, tmp_path / "ckpt")
    assert what in str(info.value)
