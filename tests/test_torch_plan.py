"""fastopt.torch's prepared step reuses a gradient's NumPy view while the
gradient is the same tensor at the same version and address: every change
between steps (a new gradient, set_(), resize_(), .data =, an edit in
place, a new parameter dtype) is still followed, or refused, as torch does."""
import gc
import weakref

import pytest

torch = pytest.importorskip("torch")
import fastopt.torch as fot  # noqa: E402


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
