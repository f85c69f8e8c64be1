"""fastopt.torch's prepared step hands each gradient to the engine by address
while it has the type, shape, dtype and strides the plan was made for: every
change between steps (a new gradient, set_(), resize_(), .data =, an edit in
place, a new parameter dtype) is still followed, or refused, as torch does."""
import gc
import weakref

import pytest

torch = pytest.importorskip("torch")
import fastopt.torch as fot  # noqa: E402
from conftest import run_isolated  # noqa: E402


def twins(steps=3):
    """(ours, opt, theirs, ref): Adam on a 4x3 parameter each, gradients kept between
    steps (so the plan keeps their views), stepped `steps` times alike."""
    ours, theirs = (torch.nn.Parameter(torch.zeros(4, 3, dtype=torch.float64)) for _ in range(2))
    opt, ref = fot.Adam([ours], lr=0.1), torch.optim.Adam([theirs], lr=0.1, foreach=False)
    # gradients with distinct values, so that reading them in another layout shows
    ours.grad, theirs.grad = (torch.arange(1.0, 13.0, dtype=torch.float64).reshape(4, 3)
                              for _ in range(2))
    both(opt, ref, steps)
    return ours, opt, theirs, ref


def both(opt, ref, n=1):
    for _ in range(n):
        opt.step()
        ref.step()


def same(ours, theirs):
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-12, atol=1e-15)


CHANGES = {
    "new tensor": lambda p: setattr(p, "grad", torch.full((4, 3), -2.0, dtype=torch.float64)),
    "edited in place": lambda p: p.grad.mul_(-3.0),
    "set_ other memory": lambda p: p.grad.set_(torch.full((4, 3), 0.5, dtype=torch.float64)),
    "data assigned": lambda p: setattr(p.grad, "data", torch.full((4, 3), -0.25, dtype=torch.float64)),
    # the same address and version, other strides: torch reads the new layout
    "data assigned, same memory transposed":
        lambda p: setattr(p.grad, "data", p.grad.as_strided((4, 3), (1, 4))),
    "accumulated": lambda p: p.grad.add_(torch.arange(12.0, dtype=torch.float64).reshape(4, 3)),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_changed_gradient_is_what_the_next_step_reads(change):
    ours, opt, theirs, ref = twins()
    for p in (ours, theirs):
        CHANGES[change](p)
    both(opt, ref, 2)
    same(ours, theirs)


@pytest.mark.parametrize("change", ["resize_", "set_ smaller", "as_strided_", ".data = other shape",
                                    ".data = other dtype"])
def test_a_gradient_reshaped_in_place_is_refused_as_before(change):
    ours, opt, _, _ = twins()
    before = ours.detach().clone()
    g = ours.grad
    if change == "resize_":
        g.resize_(6)
    elif change == "set_ smaller":
        g.set_(g.untyped_storage(), 0, (2, 3), (3, 1))
    elif change == "as_strided_":
        g.as_strided_((3, 4), (1, 3))
    elif change == ".data = other shape":  # a view at the same address and version
        g.data = g.view(12)
    else:
        g.data = g.view(torch.int64)
    with pytest.raises(TypeError, match="gradient of parameter 0"):
        opt.step()
    same(ours, before)
    assert opt.state[ours]["step"].item() == 3


def test_a_parameter_of_another_dtype_is_refused_as_before():
    ours, opt, _, _ = twins()
    ours.data = ours.data.float()
    with pytest.raises(TypeError, match="gradient of parameter 0 has dtype torch.float64"):
        opt.step()


def test_gradients_set_to_none_are_freed():
    # a training loop's zero_grad() drops the gradients: the plan must not keep them
    ours, opt, _, _ = twins(steps=1)
    for _ in range(3):
        ours.grad = torch.ones(4, 3, dtype=torch.float64)
        gone = weakref.ref(ours.grad)
        opt.step()
        opt.zero_grad()
        gc.collect()
        assert gone() is None


def test_new_gradient_tensors_keep_the_prepared_step():
    # backward() after zero_grad() makes new gradient tensors at every step: the
    # plan takes them by address (the checked path would build a new plan each time)
    ours, opt, theirs, ref = twins()
    plan = opt._fo_plan
    for k in range(3):
        for p in (ours, theirs):
            p.grad = torch.full((4, 3), 0.5 - k, dtype=torch.float64)
        both(opt, ref)
        assert opt._fo_plan is plan
    same(ours, theirs)


def test_a_gradient_of_a_tensor_subclass_is_taken_by_the_checked_path():
    # a subclass can answer data_ptr() with anything (__torch_function__): it is
    # not handed over as an address (in a process of its own: a wrong one crashes)
    out = run_isolated("""
        import torch, fastopt.torch as fot

        class Shifted(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                if func is torch.Tensor.data_ptr:
                    return 64
                return super().__torch_function__(func, types, args, kwargs or {})

        ours, theirs = (torch.nn.Parameter(torch.zeros(4, 3, dtype=torch.float64)) for _ in range(2))
        opt, ref = fot.SGD([ours], lr=0.1), torch.optim.SGD([theirs], lr=0.1)
        for k in range(3):
            grad = torch.full((4, 3), 2.0 + k, dtype=torch.float64)
            ours.grad, theirs.grad = (grad.as_subclass(Shifted) if k else grad), grad.clone()
            opt.step()
            ref.step()
        assert torch.equal(ours.detach(), theirs.detach())
        print("ok")
    """)
    assert out.strip() == "ok"


def test_the_engine_checks_each_address_it_is_given():
    import numpy as np
    from fastopt import _core
    p = np.zeros(4)
    engine = _core.Engine("sgd", [p], [(None, None, None)], [0], [0])
    g = np.full(4, 2.0)
    engine.step_at((g.ctypes.data,), [{"lr": 0.5}])
    engine.step_at((g,), [{"lr": 0.5}])  # an array is checked as step() checks it
    assert p.tolist() == [-2.0] * 4
    for bad in (0, g.ctypes.data + 4):
        with pytest.raises(ValueError, match="null or not aligned for its 8-byte elements"):
            engine.step_at((bad,), [{"lr": 0.5}])
    with pytest.raises(TypeError, match="must be a numpy array, got float"):
        engine.step_at((1.0,), [{"lr": 0.5}])
    p.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        engine.step_at((g.ctypes.data,), [{"lr": 0.5}])
    assert p.tolist() == [-2.0] * 4 and engine.steps[0] == 2
