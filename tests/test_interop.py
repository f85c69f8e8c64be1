"""The interop guide's recipes (docs/interop.md): buffers fastopt can step in place."""
import array
from multiprocessing import shared_memory

import numpy as np
import pytest

import fastopt


def sgd_once(param, n):
    fastopt.SGD([param], lr=0.5).step([np.ones(n, np.float32)])


def test_array_array_and_bytearray_are_updated_in_place():
    w = array.array("f", [1.0, 2.0, 3.0, 4.0])
    sgd_once(w, 4)
    assert w.tolist() == [0.5, 1.5, 2.5, 3.5]
    raw = bytearray(np.arange(4, dtype=np.float32).tobytes())
    sgd_once(np.frombuffer(raw, dtype=np.float32), 4)
    assert np.frombuffer(raw, dtype=np.float32).tolist() == [-0.5, 0.5, 1.5, 2.5]


def test_read_only_buffer_is_refused():
    with pytest.raises(ValueError, match="read-only"):
        fastopt.SGD([np.frombuffer(bytes(16), dtype=np.float32)])


def test_shared_memory_parameters():
    shm = shared_memory.SharedMemory(create=True, size=4 * 1000)
    try:
        theta = np.ndarray((1000,), np.float32, buffer=shm.buf)
        theta[:] = 1
        sgd_once(theta, 1000)
        seen = np.ndarray((1000,), np.float32, buffer=shm.buf)  # another view, as another process would have
        assert np.all(seen == 0.5)
        del theta, seen
    finally:
        shm.close()
        shm.unlink()


def test_flat_buffer_split_into_parameters():
    flat = np.zeros(10_000, np.float32)
    w, b = flat[:9_000].reshape(900, 10), flat[9_000:9_010]
    fastopt.Adam([w, b], lr=0.1).step([np.ones((900, 10), np.float32), np.ones(10, np.float32)])
    assert np.allclose(flat[:9_010], -0.1) and np.all(flat[9_010:] == 0)


def test_dlpack_torch_tensor_is_stepped_in_place():
    torch = pytest.importorskip("torch")
    t = torch.zeros(100)
    opt = fastopt.Adam([np.from_dlpack(t)], lr=0.1)
    opt.step([np.from_dlpack(torch.ones(100))])
    assert torch.allclose(t, torch.full((100,), -0.1))


def test_jax_gradients_numpy_parameters():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = x @ rng.standard_normal(8).astype(np.float32)
    params = {"w": np.zeros(8, np.float32), "b": np.zeros((), np.float32)}
    opt = fastopt.Adam(params, lr=0.05)

    @jax.jit
    def loss_and_grads(p, x, y):
        return jax.value_and_grad(lambda p: jnp.mean((x @ p["w"] + p["b"] - y) ** 2))(p)

    first = None
    for _ in range(300):
        loss, grads = loss_and_grads(params, x, y)
        first = float(loss) if first is None else first
        grads = {k: np.asarray(g) for k, g in grads.items()}   # read-only host views
        assert not grads["w"].flags.writeable
        opt.step(grads)
    assert float(loss) < 1e-6 * first
    with pytest.raises(ValueError, match="read-only"):
        fastopt.Adam([np.asarray(jnp.ones(3))])  # a JAX array itself cannot be a parameter
