"""The examples in fastopt's docstrings and the recipes of the README and docs run as shown."""
import doctest
import re
from pathlib import Path

import numpy as np
import pytest

import fastopt.functional
import fastopt.optim
import fastopt.reference


@pytest.mark.parametrize("module", [fastopt.optim, fastopt.functional, fastopt.reference],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# The recipes of README.md and docs/recipes.md: each ```python block after a
# "<!-- recipe: NAME -->" marker runs as it stands and does what its comments say.

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->\n```python\n(.*?)\n```", re.S)
needs_source_tree = pytest.mark.skipif(not (ROOT / "docs" / "recipes.md").exists(),
                                       reason="needs a source tree (README.md, docs/)")


def shown_recipes():
    """name -> {page: code} for every recipe block in README.md and docs/*.md."""
    found = {}
    for page in PAGES:
        for name, code in RECIPE.findall(page.read_text(encoding="utf-8")):
            found.setdefault(name, {})[page.relative_to(ROOT).as_posix()] = code
    return found


def run_recipe(name, tmp_path, monkeypatch, edit=None):
    """Run recipe `name` in an empty working directory; return its namespace."""
    code = next(iter(shown_recipes()[name].values()))
    if edit is not None:
        old, new = edit
        assert old in code
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"recipe_{name}"}
    exec(compile(code, f"<recipe {name}>", "exec"), namespace)
    return namespace


@needs_source_tree
def test_every_recipe_is_in_the_readme_and_the_docs_alike():
    recipes = shown_recipes()
    assert set(recipes) == {"param-groups", "scheduler", "resume"}
    for name, copies in recipes.items():
        assert set(copies) == {"README.md", "docs/recipes.md"}, name
        assert len(set(copies.values())) == 1, f"README.md and docs/recipes.md differ on {name}"


@needs_source_tree
def test_resume_recipe_equals_uninterrupted_training_bit_for_bit(tmp_path, monkeypatch):
    ns = run_recipe("resume", tmp_path, monkeypatch)
    w, opt, sched = ns["setup"]()
    initial = w.copy()
    ns["train"](w, opt, sched, 100)
    assert not np.array_equal(w, initial)  # it trained
    assert ns["w"].tobytes() == w.tobytes()
    assert ns["opt"].param_groups[0]["params"][0] is ns["w"]
    resumed, straight = ns["opt"].state_dict()["state"][0], opt.state_dict()["state"][0]
    assert resumed["step"] == straight["step"] == 100
    for key in ("exp_avg", "exp_avg_sq"):
        assert resumed[key].tobytes() == straight[key].tobytes()
    assert ns["sched"].last_epoch == sched.last_epoch == 100
    assert ns["sched"].get_last_lr() == sched.get_last_lr()


@needs_source_tree
def test_resume_by_rebinding_trains_the_old_array(tmp_path, monkeypatch):
    # The pitfall the recipe warns about: the optimizer keeps stepping the array
    # it was built with, and the rebound name holds the checkpoint, untouched.
    ns = run_recipe("resume", tmp_path, monkeypatch, edit=('w[...] = ck["w"]', 'w = ck["w"]'))
    w, opt, sched = ns["setup"]()
    ns["train"](w, opt, sched, 100)
    assert ns["opt"].param_groups[0]["params"][0] is not ns["w"]
    assert np.array_equal(ns["w"], ns["ck"]["w"])
    assert not np.array_equal(ns["w"], w)


@needs_source_tree
def test_scheduler_recipe_gives_torchs_learning_rates(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    ns = run_recipe("scheduler", tmp_path, monkeypatch)
    t = torch.ones(10, requires_grad=True)
    opt = torch.optim.SGD([t], lr=0.1, momentum=0.9)
    warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=10)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=90)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warmup, decay], milestones=[10])
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        t.grad = 2 * t.detach()
        opt.step()
        sched.step()
    assert ns["lrs"] == pytest.approx(lrs, rel=1e-12, abs=1e-15)
    # What the recipe's comments say: from 0.01 up to 0.1 in 10 steps, then down to 0.
    assert ns["lrs"][0] == pytest.approx(0.01) and ns["lrs"][10] == pytest.approx(0.1)
    assert max(ns["lrs"]) == pytest.approx(0.1) and ns["lrs"][-1] < 1e-4
    np.testing.assert_allclose(ns["w"], t.detach().numpy(), rtol=1e-5, atol=1e-6)


@needs_source_tree
def test_param_groups_recipe_matches_torch(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    ns = run_recipe("param-groups", tmp_path, monkeypatch)
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((8, 4)), rng.standard_normal((4, 2)), np.zeros(4), np.zeros(2)]
    ts = [torch.tensor(a, requires_grad=True) for a in start]
    opt = torch.optim.AdamW([{"params": ts[:2]}, {"params": ts[2:], "weight_decay": 0.0}],
                            lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        for t in ts:
            t.grad = 0.1 * t.detach() + 1
        opt.step()
        opt.param_groups[1]["lr"] *= 0.5
    for name, t in zip(("w1", "w2", "b1", "b2"), ts):
        np.testing.assert_allclose(ns[name], t.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    assert [g["lr"] for g in ns["opt"].param_groups] == [g["lr"] for g in opt.param_groups]
