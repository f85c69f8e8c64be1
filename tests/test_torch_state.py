"""fastopt.torch's state tensors are torch's: their own step tensors, of torch's
dtype, and whatever the state dict holds now is what the next step uses."""
import pytest

torch = pytest.importorskip("torch")
import fastopt.lr_scheduler  # noqa: E402
import fastopt.torch as fot  # noqa: E402
from test_torch_interop import CONFIGS, IDS, assert_close, make_params  # noqa: E402

STEPPED = [(name, hyper) for name, hyper in CONFIGS if name != "SGD"]


@pytest.fixture
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def side_by_side(name, hyper, dtype=torch.float64):
    ours, theirs = make_params(dtype), make_params(dtype)
    return (ours, getattr(fot, name)(ours, **hyper),
            theirs, getattr(torch.optim, name)(theirs, foreach=False, **hyper))


def step_both(ours, opt, theirs, ref, gen, n=1):
    for _ in range(n):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.grad, q.grad = g.clone(), g
        opt.step()
        ref.step()


@pytest.mark.parametrize("param_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("default", ["float32", "float64"])
@pytest.mark.parametrize("name, hyper", STEPPED, ids=[i for i in IDS if not i.startswith("SGD")])
def test_step_tensors_are_torchs(name, hyper, default, param_dtype, request):
    if default == "float64":
        request.getfixturevalue("float64_default")
    ours, opt, theirs, ref = side_by_side(name, hyper, param_dtype)
    step_both(ours, opt, theirs, ref, torch.Generator().manual_seed(0), n=3)
    steps = [opt.state[p]["step"] for p in ours]
    expected = [ref.state[q]["step"] for q in theirs]
    assert {s.dtype for s in expected} == {getattr(torch, default)}
    for s, e in zip(steps, expected):
        assert s.dtype == e.dtype and s.dim() == 0 and float(s) == float(e) == 3.0
    # each parameter's own tensor, in its own storage
    assert len({s.data_ptr() for s in steps}) == len(steps)
    assert len({s.untyped_storage().data_ptr() for s in steps}) == len(steps)
    assert all(s.untyped_storage().nbytes() == s.element_size() for s in steps)


def buffer_of(name, hyper):
    """A state buffer that `name` keeps under `hyper`."""
    if name == "RMSprop":
        return "grad_avg" if hyper.get("centered") else "square_avg"
    return {"SGD": "momentum_buffer", "Adagrad": "sum", "Adadelta": "acc_delta",
            "Rprop": "step_size", "ASGD": "ax"}.get(name, "exp_avg")


REPLACED = [(i, key, how) for i, (name, hyper) in enumerate(CONFIGS)
            if name != "SGD" or hyper.get("momentum")
            for key in (buffer_of(name, hyper), "step") if not (name == "SGD" and key == "step")
            for how in ("set_", "assigned")]


@pytest.mark.parametrize("case, key, how", REPLACED,
                         ids=[f"{IDS[i]}-{key}-{how}" for i, key, how in REPLACED])
def test_state_tensors_replaced_between_steps(case, key, how):
    # The prepared step must follow what the state dict holds now: a buffer
    # set_() to other memory or replaced by a new tensor, as torch does.
    ours, opt, theirs, ref = side_by_side(*CONFIGS[case])
    gen = torch.Generator().manual_seed(1)
    step_both(ours, opt, theirs, ref, gen, n=3)
    for o, params in ((opt, ours), (ref, theirs)):
        state = o.state[params[0]]
        new = state[key] * 0.5 if key != "step" else torch.tensor(10.0)
        if how == "set_":
            state[key].set_(new)
        else:
            state[key] = new
    step_both(ours, opt, theirs, ref, gen, n=3)
    assert_close(ours, theirs, torch.float64)
    for p, q in zip(ours, theirs):
        for k, value in ref.state[q].items():
            assert_close([opt.state[p][k]], [value], torch.float64)


@pytest.mark.parametrize("module", [torch.optim.lr_scheduler, fastopt.lr_scheduler],
                         ids=["torch-scheduler", "fastopt-scheduler"])
def test_cycle_lr_with_adam(module):
    # torch's test_cycle_lr_with_adam: CyclicLR cycles Adam's beta1 through
    # 5, 4, ..., 1 (far outside [0, 1)); the optimizer steps (no gradients) without complaint.
    conv1, conv2 = torch.nn.Conv2d(1, 1, 1), torch.nn.Conv2d(1, 1, 1)
    opt = fot.Adam([{"params": conv1.parameters()}, {"params": conv2.parameters(), "lr": 0.5}],
                   lr=0.05)
    sched = module.CyclicLR(opt, base_lr=1, max_lr=5, step_size_up=4, cycle_momentum=True,
                            base_momentum=1, max_momentum=5, mode="triangular")
    lr_target = [1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3]
    momentum_target = [5, 4, 3, 2, 1, 2, 3, 4, 5, 4, 3]
    for lr, momentum in zip(lr_target, momentum_target):
        for group in opt.param_groups:
            assert group["lr"] == pytest.approx(lr) and group["betas"][0] == pytest.approx(momentum)
        opt.step()
        sched.step()


@pytest.mark.parametrize("name, hyper, base, peak", [
    ("Adam", dict(lr=0.01), 0.9, 1.25),
    ("AdamW", dict(lr=0.01, amsgrad=True), 0.7, 1.1),
    ("SGD", dict(lr=0.01, momentum=0.9), 0.5, 1.3),
    ("RMSprop", dict(lr=0.01, momentum=0.5), -0.2, 1.1),
], ids=["Adam", "AdamW", "SGD", "RMSprop"])
def test_scheduler_values_out_of_range_step_as_in_torch(name, hyper, base, peak):
    # Momenta a scheduler sets mid-run outside the constructor's ranges are
    # used as torch uses them (torch checks ranges at construction only).
    ours, opt, theirs, ref = side_by_side(name, hyper)
    scheds = [torch.optim.lr_scheduler.CyclicLR(o, base_lr=0.005, max_lr=0.02, step_size_up=5,
                                                base_momentum=base, max_momentum=peak)
              for o in (opt, ref)]
    gen = torch.Generator().manual_seed(2)
    for _ in range(12):
        step_both(ours, opt, theirs, ref, gen)
        for s in scheds:
            s.step()
    assert_close(ours, theirs, torch.float64)


@pytest.mark.parametrize("name, hyper, key", [
    ("Adam", {}, "exp_avg_sq"), ("Adam", {}, "step"), ("AdamW", {"amsgrad": True}, "exp_avg"),
    ("RMSprop", {"centered": True}, "square_avg"), ("RMSprop", {}, "step"),
])
def test_deleted_state_buffer_is_refused(name, hyper, key):
    # torch.optim raises KeyError; fastopt.torch must not step through a missing
    # buffer. (A buffer that a hyperparameter change can call for, such as
    # max_exp_avg_sq or momentum_buffer, is created afresh instead.)
    from conftest import run_isolated
    run_isolated(f"""
import pytest, torch, fastopt.torch as fot
p = torch.nn.Parameter(torch.randn(100_000))
p.grad = torch.randn(100_000)
opt = fot.{name}([p], **{hyper!r})
opt.step()
del opt.state[p][{key!r}]
before = (p.detach().clone(), {{k: v.clone() for k, v in opt.state[p].items()}})
with pytest.raises(ValueError, match="state of parameter 0 has no '{key}'"):
    opt.step()
assert torch.equal(p.detach(), before[0])
assert opt.state[p].keys() == before[1].keys()
assert all(torch.equal(opt.state[p][k], v) for k, v in before[1].items())
opt.state[p] = {{}}  # what the message suggests: start afresh
opt.step()
assert len(opt.state[p]) > 1
""")


def test_adagrad_sum_starts_at_the_constructors_value_as_in_torch():
    """torch.optim.Adagrad fills every group's ``sum`` with the constructor's
    initial_accumulator_value, a group added later included, whatever the
    group says; fastopt.torch.Adagrad does the same (the NumPy fastopt.Adagrad
    honours each group's own value)."""
    results = []
    for cls in (torch.optim.Adagrad, fot.Adagrad):
        torch.manual_seed(0)
        a, b, c = (torch.randn(n, dtype=torch.float64) for n in (3, 4, 5))
        opt = cls([{"params": [a]}, {"params": [b], "initial_accumulator_value": 2.0}],
                  lr=0.1, initial_accumulator_value=0.5)
        opt.add_param_group({"params": [c], "initial_accumulator_value": 3.0})
        for _ in range(3):
            for p in (a, b, c):
                p.grad = torch.ones_like(p)
            opt.step()
        results.append([t.clone() for t in (a, b, c)] + [opt.state[p]["sum"].clone() for p in (a, b, c)])
    for ours, theirs in zip(results[1], results[0]):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)
