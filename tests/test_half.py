"""The 16-bit conversion lanes (csrc/fo_vec.h: fo_load/fo_store_bf16 and
_f16) on every SIMD path, through the test-only module fastopt._convert,
against NumPy's float16 and ml_dtypes' bfloat16, bit for bit."""
import sys

import numpy as np
import pytest

from fastopt import _convert, _core
from conftest import run_isolated

ISAS = _core.isa_names()
# Widest vector of any path, in float32 lanes (AVX-512): tails are shorter.
MAX_W = 16
CANON_F32 = 0x7FC00000
CANON_16 = {"f16": 0x7E00, "bf16": 0x7FC0}


def dtype_of(fmt):
    """The NumPy dtype of a 16-bit format; bfloat16 needs ml_dtypes."""
    if fmt == "f16":
        return np.float16
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (the [test] extra) gives the bfloat16 oracle")
    return ml_dtypes.bfloat16


def run(kind, src, isa):
    dst = np.empty(src.size, _convert.KINDS[kind][2])
    _convert.convert(kind, dst, src, isa)
    return dst


def f32(bits):
    return np.asarray(bits, np.uint32).view(np.float32)


def boundary_inputs(fmt):
    """float32 values around every rounding boundary of the format: each
    midpoint between neighbouring finite 16-bit values (a tie: exact in
    float32) and the float32 values just below and above it, both signs,
    including the midpoint past the largest finite value (overflow)."""
    dt = dtype_of(fmt)
    bits = np.arange(0, 0x7C00 if fmt == "f16" else 0x7F80, dtype=np.uint16)
    lo = bits.view(dt).astype(np.float64)
    hi = np.append(lo[1:], 2 * lo[-1] - lo[-2])  # past the largest finite: the next binade's step
    mid = ((lo + hi) / 2).astype(np.float32)
    assert np.array_equal(mid.astype(np.float64), (lo + hi) / 2), "midpoints are exact in float32"
    up, down = np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(0))
    vals = np.concatenate([mid, up, down, lo.astype(np.float32)])
    return np.concatenate([vals, -vals])


def bit_inputs(rng):
    """Every sign and exponent with significands that tie, or miss a tie by
    one, at every bit position (every rounding position of both formats,
    f16 subnormals included), random significands, and the specials."""
    k = np.arange(23, dtype=np.uint32)[:, None]
    upper = np.array([0, 1, 2, 3, 0x2AAAAA, 0x555555, 0x7FFFFF], np.uint32)[None, :]
    ties = ((upper << (k + 1)) | (np.uint32(1) << k)) & 0x7FFFFF
    mant = np.unique(np.concatenate([ties.ravel(), (ties - 1).ravel() & 0x7FFFFF, (ties + 1).ravel() & 0x7FFFFF,
                                     np.array([0, 1, 0x7FFFFF, 0x400000], np.uint32),
                                     rng.integers(0, 1 << 23, 200, dtype=np.uint32)]))
    exp = np.arange(256, dtype=np.uint32)[:, None] << 23
    x = (exp | mant[None, :]).ravel()
    specials = np.array([0, 0x7F800000, 0x7FC00000, 0x7F800001, 0x7FBFFFFF, 0x7FFFFFFF, 0x7FC00001,
                         0x7F7FFFFF, 0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000,
                         0x38800000, 0x387FFFFF, 0x33000000, 0x33000001, 0x32FFFFFF, 0x33800000, 1],
                        np.uint32)
    x = np.concatenate([x, specials, rng.integers(0, 1 << 32, 100_000, dtype=np.uint32)])
    return f32(np.concatenate([x, x | 0x80000000]))


def random_bits(rng, n, dtype):
    """n values of dtype with random bit patterns (NaNs and infinities too)."""
    words = rng.integers(0, 1 << 16, n * np.dtype(dtype).itemsize // 2, dtype=np.uint16)
    return words.view(dtype)


def store_inputs(fmt, rng):
    return np.concatenate([boundary_inputs(fmt), bit_inputs(rng)])


def expected_store(x, fmt):
    with np.errstate(over="ignore", invalid="ignore"):
        out = x.astype(dtype_of(fmt)).view(np.uint16).copy()
    out[np.isnan(x)] = CANON_16[fmt]
    return out


def assert_bits_equal(actual, expected, inputs, what):
    bad = np.flatnonzero(actual != expected)
    if bad.size:
        i = bad[:5]
        pytest.fail(f"{what}: {bad.size} of {actual.size} differ; inputs {[hex(int(v)) for v in inputs[i]]} "
                    f"gave {[hex(int(v)) for v in actual[i]]}, expected {[hex(int(v)) for v in expected[i]]}")


@pytest.mark.parametrize("fmt", ["f16", "bf16"])
@pytest.mark.parametrize("isa", ISAS)
def test_load_every_bit_pattern(fmt, isa):
    """Each of the 65,536 patterns widens exactly as NumPy / ml_dtypes widen
    it. NaNs reach memory only through a store, which writes the canonical
    float32 NaN (fo_vec.h: a loaded NaN's payload cannot be seen)."""
    bits = np.arange(1 << 16, dtype=np.uint16)
    expected = bits.view(dtype_of(fmt)).astype(np.float32).view(np.uint32).copy()
    nan = np.isnan(bits.view(dtype_of(fmt)))
    assert nan.sum() == (2046 if fmt == "f16" else 254)
    expected[nan] = CANON_F32
    actual = run(f"{fmt}_to_f32", bits, isa).view(np.uint32)
    assert_bits_equal(actual, expected, bits, f"{fmt} load on {isa}")


@pytest.mark.parametrize("fmt", ["f16", "bf16"])
@pytest.mark.parametrize("isa", ISAS)
def test_store_rounds_to_nearest_even(fmt, isa):
    """float32 -> 16 bits as NumPy (float16) and ml_dtypes (bfloat16) round,
    at and around every rounding boundary of every exponent, subnormals,
    +-0, +-inf, overflow past the largest finite value, and every NaN as the
    canonical one."""
    x = store_inputs(fmt, np.random.default_rng(7))
    assert np.isnan(x).any() and np.isinf(x).any() and (x == 0).any()
    actual = run(f"f32_to_{fmt}", x, isa)
    assert_bits_equal(actual, expected_store(x, fmt), x.view(np.uint32), f"{fmt} store on {isa}")


def test_store_examples():
    """A few roundings spelled out, independent of any oracle library."""
    x = f32([0x3F808000, 0x3F818000, 0x3F808001, 0x7F7FFFFF, 0xFF7FFFFF, 0xFFC00001])
    # bf16: tie to even (down, up), just above a tie, overflow to +-inf, NaN
    assert list(run("f32_to_bf16", x, "scalar")) == [0x3F80, 0x3F82, 0x3F81, 0x7F80, 0xFF80, 0x7FC0]
    # f16: 65520 ties to even (inf), 2^-25 ties to 0, just above it is the smallest subnormal
    y = np.array([65504, 65519, 65520, 2.0 ** -25, np.nextafter(np.float32(2.0 ** -25), 1), -0.0, 2.0 ** -24 * 1.5],
                 np.float32)
    assert list(run("f32_to_f16", y, "scalar")) == [0x7BFF, 0x7BFF, 0x7C00, 0, 1, 0x8000, 2]


@pytest.mark.parametrize("isa", [n for n in ISAS if n != "scalar"])
def test_every_isa_gives_the_one_lane_bits(isa):
    """Each path's conversions equal the one-lane path's, bit for bit, over
    every 16-bit pattern and random float32 patterns, at lengths that end in
    a partial vector."""
    rng = np.random.default_rng(11)
    bits = np.arange(1 << 16, dtype=np.uint16)
    x = rng.integers(0, 1 << 32, 100_003, dtype=np.uint32).view(np.float32)
    for n in (1 << 16, 65_533, 1, 2, 3, 5, 7, 9, 15, 17):
        for kind in ("bf16_to_f32", "f16_to_f32"):
            assert_bits_equal(run(kind, bits[:n], isa).view(np.uint32),
                              run(kind, bits[:n], "scalar").view(np.uint32), bits[:n], f"{kind} {isa} n={n}")
    for n in (100_003, 100_001, 1, 3, 13):
        for kind in ("f32_to_bf16", "f32_to_f16"):
            assert_bits_equal(run(kind, x[:n], isa), run(kind, x[:n], "scalar"), x[:n].view(np.uint32),
                              f"{kind} {isa} n={n}")


@pytest.mark.parametrize("isa", ISAS)
def test_tail_leaves_neighbours_alone(isa):
    """A partial vector writes only its own elements (sentinels around the
    destination, as tests/test_kernels.py does) and converts them right."""
    rng = np.random.default_rng(3)
    pad = 2 * MAX_W
    for kind, (_, src_t, dst_t) in _convert.KINDS.items():
        for start in (0, 1, 3):
            for n in range(0, 2 * MAX_W + 2):
                src = random_bits(rng, n, src_t)
                whole = random_bits(rng, start + n + pad, dst_t)
                before = whole.copy()
                dst = whole[start:start + n]
                _convert.convert(kind, dst, src, isa)
                what = f"{kind} {isa} start={start} n={n}"
                np.testing.assert_array_equal(whole[:start].view(np.uint8), before[:start].view(np.uint8), what)
                np.testing.assert_array_equal(whole[start + n:].view(np.uint8), before[start + n:].view(np.uint8),
                                              what)
                np.testing.assert_array_equal(dst.view(np.uint8), run(kind, src, "scalar").view(np.uint8), what)


@pytest.mark.skipif(sys.platform == "win32", reason="guard pages through mprotect (POSIX)")
def test_tail_reads_and_writes_nothing_past_n():
    """Every conversion of every length up to two vectors, on every path,
    with the source and the destination each ending right before a page
    that may not be touched: one byte read or written past n would crash."""
    code = f"""
        import ctypes, mmap
        import numpy as np
        from fastopt import _convert, _core
        PAGE = mmap.PAGESIZE
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

        def guarded(dtype, n):
            # n elements ending where a PROT_NONE page starts
            m = mmap.mmap(-1, 2 * PAGE)
            base = ctypes.addressof(ctypes.c_char.from_buffer(m))
            assert libc.mprotect(base + PAGE, PAGE, 0) == 0, ctypes.get_errno()
            size = np.dtype(dtype).itemsize
            return m, np.frombuffer(m, np.uint8, n * size, PAGE - n * size).view(dtype)

        count = 0
        for isa in _core.isa_names():
            for kind, (_, src_t, dst_t) in _convert.KINDS.items():
                for n in range({2 * MAX_W + 2}):
                    ms, src = guarded(src_t, n)
                    md, dst = guarded(dst_t, n)
                    src[:] = np.arange(n).astype(src_t)
                    _convert.convert(kind, dst, src, isa)
                    expected = np.empty(n, dst_t)
                    _convert.convert(kind, expected, src.copy(), "scalar")
                    assert np.array_equal(dst.view(np.uint8), expected.view(np.uint8)), (isa, kind, n)
                    del src, dst
                    count += 1
        print(count)
    """
    out = run_isolated(code)
    assert int(out) == len(ISAS) * 4 * (2 * MAX_W + 2)


def test_bad_arguments():
    a16, a32 = np.zeros(4, np.uint16), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="unknown conversion"):
        _convert.convert("f64_to_f16", a16, a32, "scalar")
    with pytest.raises(TypeError, match="src must be"):
        _convert.convert("f32_to_f16", a16, a16, "scalar")
    with pytest.raises(TypeError, match="dst must be"):
        _convert.convert("f32_to_f16", a32[::2].copy(), a32[:2], "scalar")
    with pytest.raises(ValueError, match="lengths differ"):
        _convert.convert("f32_to_f16", a16[:3], a32, "scalar")
    with pytest.raises(ValueError, match="unknown SIMD path"):
        _convert.convert("f32_to_f16", a16, a32, "bogus")
    assert not np.any(a16)
