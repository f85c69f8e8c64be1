"""fastopt.torch: drop-in torch.optim optimizers over fastopt's kernels."""
import copy
import inspect
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fastopt.torch as fot  # noqa: E402
from conftest import BY_NAME, SPARSE_ONLY_IN_TORCH  # noqa: E402
from fastopt._spec import SPECS  # noqa: E402

# (class name, hyperparameters): every kernel mode torch has on the CPU.
CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.3)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, decoupled_weight_decay=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("Adadelta", dict(lr=0.5)),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1, maximize=True)),
    ("RAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Rprop", dict(lr=0.01)),
    ("Rprop", dict(lr=0.02, etas=(0.4, 1.1), step_sizes=(1e-4, 0.1), maximize=True)),
]
# Every optimizer of fastopt._spec that torch.optim has too; those the list above
# lacks run with the options that allocate all their state (conftest.py's table).
# Muon (2-D only: these run every shape) is checked against torch in test_muon.py.
TORCH_NAMES = [name for name in SPECS if hasattr(torch.optim, name) and name in BY_NAME
               and name not in SPARSE_ONLY_IN_TORCH]
CONFIGS += [(name, BY_NAME[name].full) for name in TORCH_NAMES if name not in dict(CONFIGS)]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]
SHAPES = [(7, 5), (5,), (), (0,), (33,), (4, 3, 2)]


def tolerances(dtype):
    # The contract's parity bounds (docs: "Numbers").
    return dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)


def make_params(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in SHAPES]


def assert_close(a, b, dtype):
    tol = tolerances(dtype)
    for x, y in zip(a, b):
        scale = max(1.0, float(y.detach().abs().max())) if y.numel() else 1.0
        torch.testing.assert_close(x.detach(), y.detach(), rtol=tol["rtol"],
                                   atol=tol["atol"] * scale)


def assert_state_close(sd_a, sd_b, dtype):
    assert sd_a["state"].keys() == sd_b["state"].keys()
    for i in sd_a["state"]:
        ea, eb = sd_a["state"][i], sd_b["state"][i]
        assert ea.keys() == eb.keys()
        for key in ea:
            assert type(ea[key]) is type(eb[key])
            # torch's load_state_dict casts 0-d state such as NAdam's mu_product to the
            # parameter's dtype (its own resumed runs differ so from unbroken ones)
            if not any(key in spec.scalar_names for spec in SPECS.values()):
                assert ea[key].dtype == eb[key].dtype, key
            assert ea[key].shape == eb[key].shape, key
            assert_close([ea[key]], [eb[key].to(ea[key].dtype)], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name, hyper", CONFIGS, ids=IDS)
def test_same_numbers_and_state_as_torch(name, hyper, dtype):
    ours, theirs = make_params(dtype), make_params(dtype)
    opt = getattr(fot, name)(ours, **hyper)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **hyper)
    gen = torch.Generator().manual_seed(1)
    for _ in range(100):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen, dtype=dtype)
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    assert_close(ours, theirs, dtype)
    sd, sd_ref = opt.state_dict(), ref.state_dict()
    assert_state_close(sd, sd_ref, dtype)
    for group in sd_ref["param_groups"]:
        group["foreach"] = None  # the reference was made with foreach=False
    assert sd["param_groups"] == sd_ref["param_groups"]


def mlp(dtype, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 3)).to(dtype)


def train(model, opt, steps, seed):
    """`steps` steps on batches of a learnable task (labels from a fixed linear map)."""
    dtype = next(model.parameters()).dtype
    teacher = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = torch.randn(64, 8, generator=gen, dtype=dtype)
        y = (x @ teacher).argmax(dim=1)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        losses.append(opt.step(closure).item())
    return losses


def test_model_side_by_side_with_torch_adam():
    a, b = mlp(torch.float64), mlp(torch.float64)
    losses_a = train(a, fot.Adam(a.parameters(), lr=1e-2, weight_decay=1e-3), 60, seed=2)
    losses_b = train(b, torch.optim.Adam(b.parameters(), lr=1e-2, weight_decay=1e-3), 60, seed=2)
    np.testing.assert_allclose(losses_a, losses_b, rtol=1e-10)
    assert losses_a[-1] < 0.8 * losses_a[0]  # it trains
    assert_close(list(a.parameters()), list(b.parameters()), torch.float64)


@pytest.mark.parametrize("direction", ["torch->fastopt", "fastopt->torch"])
@pytest.mark.parametrize("name", TORCH_NAMES)
def test_checkpoint_moves_between_torch_and_fastopt(name, direction, tmp_path):
    hyper = dict(lr=0.01)
    if name == "SGD":
        hyper["momentum"] = 0.9
    if name == "RMSprop":
        hyper.update(momentum=0.5, centered=True)
    first, second = ((torch.optim, fot) if direction == "torch->fastopt" else (fot, torch.optim))

    # Run A for 20 steps, save model and optimizer, then keep going for 20.
    model = mlp(torch.float64)
    opt = getattr(first, name)(model.parameters(), **hyper)
    train(model, opt, 20, seed=3)
    torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, tmp_path / "ckpt.pt")
    expected = train(model, opt, 20, seed=4)

    # Resume from the file with the other implementation.
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed = mlp(torch.float64, seed=99)
    resumed.load_state_dict(ckpt["model"])
    opt2 = getattr(second, name)(resumed.parameters(), **hyper)
    opt2.load_state_dict(ckpt["optim"])
    got = train(resumed, opt2, 20, seed=4)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert_close(list(resumed.parameters()), list(model.parameters()), torch.float64)
    assert_state_close(opt2.state_dict(), opt.state_dict(), torch.float64)


def test_state_is_torchs_layout():
    p = torch.nn.Parameter(torch.randn(3))
    opt = fot.Adam([p], amsgrad=True)
    p.grad = torch.ones(3)
    opt.step()
    state = opt.state[p]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert state["step"].dtype == torch.float32 and state["step"].dim() == 0
    assert float(state["step"]) == 1.0
    assert isinstance(opt, torch.optim.Adam) and isinstance(opt, torch.optim.Optimizer)
    assert isinstance(fot.AdamW([p]), torch.optim.AdamW)


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_signature_is_torchs(name):
    def params(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()]

    # fastopt's own keyword-only arguments come last (master weights, rounding)
    extra = [("master_weights", inspect.Parameter.KEYWORD_ONLY, False),
             ("rounding", inspect.Parameter.KEYWORD_ONLY, "nearest"),
             ("seed", inspect.Parameter.KEYWORD_ONLY, 0),
             ("state_dtype", inspect.Parameter.KEYWORD_ONLY, None)]
    assert params(getattr(fot, name)) == params(getattr(torch.optim, name)) + extra


def test_params_without_grad_are_left_alone():
    a, b = torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(4))
    before = b.detach().clone()
    opt = fot.Adam([a, b], lr=0.1)
    a.grad = torch.ones(4)
    opt.step()
    assert torch.equal(b, before) and b not in opt.state
    assert float(opt.state[a]["step"]) == 1


def test_groups_and_torch_scheduler():
    def setup(module):
        model = mlp(torch.float64)
        opt = module.SGD([{"params": model[0].parameters(), "lr": 0.2},
                          {"params": model[2].parameters()}], lr=0.05, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        return model, opt, sched

    results = []
    for module in (fot, torch.optim):
        model, opt, sched = setup(module)
        losses = []
        for k in range(15):
            losses += train(model, opt, 1, seed=k)
            sched.step()
        results.append((losses, [g["lr"] for g in opt.param_groups]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10)
    assert results[0][1] == results[1][1] == [0.2 * 0.125, 0.05 * 0.125]


def test_parameter_data_replaced_between_steps():
    p = torch.nn.Parameter(torch.zeros(5))
    opt = fot.SGD([p], lr=1.0)
    p.grad = torch.ones(5)
    opt.step()
    p.data = torch.full((5,), 10.0)  # new storage: the next step must write there
    opt.step()
    assert torch.equal(p.detach(), torch.full((5,), 9.0))


def test_load_state_dict_then_step_uses_the_loaded_buffers():
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = fot.Adam([p], lr=0.1)
    p.grad = torch.ones(3, dtype=torch.float64)
    opt.step()  # the cached step plan now points at the first exp_avg
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["exp_avg"].fill_(5.0)
    opt.load_state_dict(sd)
    opt.step()
    assert torch.allclose(opt.state[p]["exp_avg"], torch.full((3,), 0.9 * 5.0 + 0.1, dtype=torch.float64))


def test_pickle_and_deepcopy():
    p = torch.nn.Parameter(torch.randn(3))
    opt = fot.Adam([p])
    p.grad = torch.ones(3)
    opt.step()
    clone = copy.deepcopy(opt)
    clone.step()
    restored = pickle.loads(pickle.dumps(opt))
    assert float(restored.state_dict()["state"][0]["step"]) == 1.0


def test_closure_returns_loss():
    p = torch.nn.Parameter(torch.tensor([3.0]))
    opt = fot.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 9.0
    assert torch.allclose(p.detach(), torch.tensor([3.0 - 0.1 * 6.0]))


# -------------------------------------------------------------- bad input


def bad_cases():
    def meta_param():
        p = torch.nn.Parameter(torch.empty(4, device="meta"))
        p.grad = torch.empty(4, device="meta")
        return p

    def complex_param():  # (float16 and bfloat16 are stepped)
        p = torch.nn.Parameter(torch.randn(4, dtype=torch.complex64))
        p.grad = torch.randn(4, dtype=torch.complex64)
        return p

    def sliced_param():  # skips memory: not one flat buffer
        p = torch.nn.Parameter(torch.randn(6, 8)[:, ::2])
        p.grad = torch.randn(6, 4)
        return p

    def expanded_param():  # reuses memory
        p = torch.nn.Parameter(torch.randn(1, 4).expand(3, 4))
        p.grad = torch.randn(3, 4)
        return p

    def sparse_grad():
        p = torch.nn.Parameter(torch.randn(5, 2))
        p.grad = torch.sparse_coo_tensor([[0, 3]], torch.ones(2, 2), (5, 2), check_invariants=True)
        return p

    return [
        (meta_param, TypeError, "is on meta"),
        (complex_param, TypeError, "complex64"),
        (sliced_param, ValueError, r"parameter 1 \(shape \(6, 4\), strides \(8, 2\)\).*slice"),
        (expanded_param, ValueError, r"parameter 1 .*param.data = param.data.clone\(\)"),
        (sparse_grad, TypeError, "sparse"),
    ]


@pytest.mark.parametrize("name", TORCH_NAMES)
@pytest.mark.parametrize("make_bad, exc, message", bad_cases(),
                         ids=["meta", "complex", "sliced", "expanded", "sparse"])
def test_bad_tensors_raise_before_anything_changes(name, make_bad, exc, message):
    if message == "sparse" and SPECS[name].sparse is not None:
        pytest.skip("it takes sparse gradients: tests/test_sparse.py checks what it refuses")
    good = torch.nn.Parameter(torch.randn(4))
    good.grad = torch.ones(4)
    last = torch.nn.Parameter(torch.randn(3))
    last.grad = torch.ones(3)
    bad = make_bad()
    params = [good, bad, last]
    hyper = {"momentum": 0.9} if name == "SGD" else {}
    opt = getattr(fot, name)(params, **hyper)
    before = [p.detach().clone() if p.device.type == "cpu" else p for p in params]
    state_before = {id(p): set(s) for p, s in opt.state.items()}
    with pytest.raises(exc, match=message):
        opt.step()
    for p, b in zip(params, before):
        if p.device.type == "cpu":
            assert torch.equal(p.detach(), b)
    assert {id(p): set(s) for p, s in opt.state.items()} == state_before


def test_hyperparameters_checked_where_torch_checks():
    # Ranges at construction and add_param_group, as torch; a step checks types only.
    p = torch.nn.Parameter(torch.randn(3))
    with pytest.raises(ValueError):
        fot.Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="differentiable"):
        fot.Adam([p], differentiable=True)
    opt = fot.Adam([p], lr=0.1)
    with pytest.raises(ValueError, match="beta2"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(2))], "betas": (0.9, 1.0)})
    assert len(opt.param_groups) == 1
    q = torch.nn.Parameter(p.detach().clone())
    ref = torch.optim.Adam([q], lr=0.1, foreach=False)
    for o in (opt, ref):
        o.param_groups[0]["lr"] = -0.5  # edited after construction: torch steps with it
    p.grad, q.grad = torch.ones(3), torch.ones(3)
    opt.step()
    ref.step()
    assert_close([p], [q], torch.float32)
    opt.param_groups[0]["lr"] = "0.1"  # not a number: refused before anything changes
    before = p.detach().clone()
    with pytest.raises(TypeError, match="param group 0: lr must be a real number, got str"):
        opt.step()
    assert torch.equal(p.detach(), before) and float(opt.state[p]["step"]) == 1.0


def test_shared_memory_rolls_back_new_state():
    base = torch.zeros(10)
    a = torch.nn.Parameter(base[:6])
    b = torch.nn.Parameter(base[4:])  # overlaps a
    a.grad, b.grad = torch.ones(6), torch.ones(6)
    opt = fot.Adam([a, b])
    with pytest.raises(ValueError, match="share memory"):
        opt.step()
    assert len(opt.state) == 0 or all(len(s) == 0 for s in opt.state.values())
    assert torch.equal(base, torch.zeros(10))


def test_import_fastopt_does_not_import_torch():
    code = "import sys, fastopt; fastopt.Adam; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_follows_changes_between_steps_like_torch(name):
    # fastopt.torch prepares a step once and reuses it; every change torch
    # allows between steps must still be seen, exactly as torch sees it.
    ours, theirs = make_params(torch.float64), make_params(torch.float64)
    hyper = dict(lr=0.05)
    opt = getattr(fot, name)(ours, **hyper)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **hyper)
    gen = torch.Generator().manual_seed(5)

    def both(change):
        for o, params in ((opt, ours), (ref, theirs)):
            change(o, params)

    def step(skip=()):
        for k, (p, q) in enumerate(zip(ours, theirs)):
            g = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.grad, q.grad = (None, None) if k in skip else (g.clone(), g.clone())
        opt.step()
        ref.step()

    def set_hyper(key, value):
        def change(o, params):
            o.param_groups[0][key] = value
        return change

    def reload(o, params):
        o.load_state_dict(copy.deepcopy(o.state_dict()))

    def reset_step(o, params):
        if "step" in o.state[params[0]]:
            o.state[params[0]]["step"].fill_(1.0)

    step()
    step()
    step(skip={1, 2})                       # some parameters without a gradient
    step()
    both(set_hyper("lr", 0.01))            # a scheduler's edit
    step()
    if name == "SGD":
        both(set_hyper("momentum", 0.9))   # new state buffers appear
    else:
        both(set_hyper("betas", (0.8, 0.99)))
    step()
    both(set_hyper("weight_decay", 0.1))
    step()
    both(reload)                            # new state tensors
    step()
    both(reset_step)                        # a state tensor edited in place
    step()
    ours[0].data = ours[0].data.clone()     # new storage for a parameter
    step()
    assert_close(ours, theirs, torch.float64)
    sd, sd_ref = opt.state_dict(), ref.state_dict()
    assert_state_close(sd, sd_ref, torch.float64)


def test_bad_gradient_after_good_steps_changes_nothing():
    p, q = torch.nn.Parameter(torch.randn(4, 6)), torch.nn.Parameter(torch.randn(3))
    opt = fot.Adam([p, q])
    for _ in range(2):
        p.grad, q.grad = torch.ones(4, 6), torch.ones(3)
        opt.step()
    before = [t.detach().clone() for t in (p, q)] + [opt.state[p]["exp_avg"].clone()]
    p.grad = torch.ones(4, 6).to_sparse()  # sparse, on the prepared fast path
    with pytest.raises(TypeError, match="gradient of parameter 0 is a torch.sparse_coo tensor"):
        opt.step()
    after = [t.detach().clone() for t in (p, q)] + [opt.state[p]["exp_avg"]]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert float(opt.state[q]["step"]) == 2.0
