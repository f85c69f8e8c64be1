"""fastopt.torch on dense parameters that are not C-contiguous (channels_last
Conv2d weights, transposed weights), against torch.optim on the same model."""
import copy

import pytest

torch = pytest.importorskip("torch")
import fastopt.torch as fot  # noqa: E402
from test_torch_interop import CONFIGS, IDS, assert_close  # noqa: E402


def model(dtype, seed=0):
    """A channels_last Conv2d and a Linear whose weight is stored transposed."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(3, 4, 3).to(dtype).to(memory_format=torch.channels_last)
    lin = torch.nn.Linear(4 * 4 * 4, 5).to(dtype)
    lin.weight = torch.nn.Parameter(lin.weight.detach().t().contiguous().t())
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous() and not lin.weight.is_contiguous()
    return torch.nn.ModuleList([conv, lin])


def loss_of(net, x):
    conv, lin = net
    return lin(torch.tanh(conv(x)).flatten(1)).square().mean()


def batches(dtype, n, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 3, 6, 6, generator=gen, dtype=dtype)
            .contiguous(memory_format=torch.channels_last) for _ in range(n)]


def train(net, opt, xs):
    for x in xs:
        opt.zero_grad()
        loss_of(net, x).backward()
        opt.step()


def assert_state_matches(opt, ref, ours, theirs, dtype):
    for p, q in zip(ours, theirs):
        mine, other = opt.state.get(p, {}), ref.state.get(q, {})
        assert sorted(mine) == sorted(other)
        for name, value in other.items():
            if name == "step" or value.dim() == 0:  # 0-d: step, NAdam's mu_product, ...
                assert float(mine[name]) == float(value), name
                continue
            assert mine[name].stride() == p.stride(), (name, tuple(p.shape))  # torch's layout
            assert_close([mine[name]], [value], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name, hyper", CONFIGS, ids=IDS)
def test_channels_last_and_transposed_match_torch(name, hyper, dtype):
    a, b = model(dtype), model(dtype)
    opt = getattr(fot, name)(a.parameters(), **hyper)
    ref = getattr(torch.optim, name)(b.parameters(), foreach=False, **hyper)
    xs = batches(dtype, 20, seed=1)
    train(a, opt, xs)
    train(b, ref, xs)
    ours, theirs = list(a.parameters()), list(b.parameters())
    assert_close(ours, theirs, dtype)
    assert [p.stride() for p in ours] == [q.stride() for q in theirs]  # still in their layout
    assert_state_matches(opt, ref, ours, theirs, dtype)


@pytest.mark.parametrize("name, hyper", CONFIGS, ids=IDS)
def test_gradients_in_another_layout_match_torch(name, hyper):
    # Gradients set by hand in any layout (contiguous for a channels_last
    # parameter, a transposed or sliced view for a contiguous one) are read
    # in the parameter's order, as torch reads them; the gradients stay as they were.
    a, b = model(torch.float64), model(torch.float64)
    extra = [torch.nn.Parameter(torch.randn(4, 6, dtype=torch.float64)) for _ in range(2)]
    ours = list(a.parameters()) + extra
    theirs = list(b.parameters()) + [torch.nn.Parameter(p.detach().clone()) for p in extra]
    opt = getattr(fot, name)(ours, **hyper)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **hyper)
    gen = torch.Generator().manual_seed(2)
    for t in range(20):
        for k, (p, q) in enumerate(zip(ours, theirs)):
            g = torch.randn(p.shape, generator=gen, dtype=torch.float64)  # contiguous
            if k == len(ours) - 2:
                g = g.t().contiguous().t()  # transposed
            if k == len(ours) - 1:
                g = torch.cat([g, g], dim=1)[:, ::2]  # a slice: not dense
            if t % 2 and k < 2:
                g = g.contiguous(memory_format=torch.channels_last) if g.dim() == 4 else g
            p.grad, q.grad = g, g.clone()
        before = [p.grad.clone() for p in ours]
        opt.step()
        ref.step()
        assert all(torch.equal(p.grad, g) for p, g in zip(ours, before))
    assert_close(ours, theirs, torch.float64)
    assert_state_matches(opt, ref, ours, theirs, torch.float64)


@pytest.mark.parametrize("name, hyper", CONFIGS, ids=IDS)
def test_state_loaded_in_another_layout(name, hyper):
    # torch's load_state_dict keeps a loaded buffer's layout: a checkpoint of a
    # contiguous model, loaded for a channels_last one, steps on as in torch
    # (fastopt copies the buffer into the parameter's layout, same values).
    plain, ours_net, theirs_net = model(torch.float64), model(torch.float64), model(torch.float64)
    with torch.no_grad():
        for p in plain.parameters():
            p.data = p.data.contiguous()
    first = getattr(torch.optim, name)(plain.parameters(), foreach=False, **hyper)
    xs = batches(torch.float64, 10, seed=3)
    train(plain, first, xs[:5])
    sd = first.state_dict()
    with torch.no_grad():
        for net in (ours_net, theirs_net):
            for p, q in zip(net.parameters(), plain.parameters()):
                p.copy_(q)
    opt = getattr(fot, name)(ours_net.parameters(), **hyper)
    ref = getattr(torch.optim, name)(theirs_net.parameters(), foreach=False, **hyper)
    opt.load_state_dict(copy.deepcopy(sd))
    ref.load_state_dict(copy.deepcopy(sd))
    train(ours_net, opt, xs[5:])
    train(theirs_net, ref, xs[5:])
    ours, theirs = list(ours_net.parameters()), list(theirs_net.parameters())
    assert_close(ours, theirs, torch.float64)
    assert_state_matches(opt, ref, ours, theirs, torch.float64)
