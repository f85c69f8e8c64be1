"""`python -m fastopt demo`: the digits MLP learns with every optimizer."""
import statistics
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
from fastopt import demo  # noqa: E402

EPOCHS = 8
# Test accuracy each optimizer's run reaches after EPOCHS epochs, with a margin
# of a few points below what it reaches (SGD ~92%, Adagrad ~97%, Adam ~94%);
# an untrained network scores ~10%.
MIN_TEST_ACCURACY = {
    "SGD": 0.88,
    "Momentum": 0.92,
    "Adagrad": 0.94,
    "RMSprop": 0.90,
    "Adam": 0.92,
    "AdamW": 0.92,
}


@pytest.fixture(scope="module")
def data():
    return demo.load_digits_split()


def test_every_optimizer_is_covered():
    assert set(MIN_TEST_ACCURACY) == set(demo.OPTIMIZERS)


@pytest.mark.parametrize("name", list(MIN_TEST_ACCURACY))
def test_digits_mlp_learns(data, name):
    result = demo.train(data, name, epochs=EPOCHS)
    assert len(result.train_loss) == EPOCHS
    assert result.test_accuracy[-1] > MIN_TEST_ACCURACY[name]
    assert result.train_accuracy[-1] > MIN_TEST_ACCURACY[name]
    assert result.train_loss[-1] < 0.5 * result.train_loss[0]
    # The schedule ran: one lr per step, and it is not constant.
    assert len(result.lr) == EPOCHS * -(-len(data.y_train) // 64)
    assert max(result.lr) > 1.5 * min(result.lr)


def test_untrained_and_zero_lr_fail_the_bar(data):
    # The thresholds above mean something: without learning the MLP is at chance.
    params = demo.init_mlp()
    assert demo.accuracy(params, data.x_test, data.y_test) < 0.3
    name = "Adam"
    cls, hyper, label, make = demo.OPTIMIZERS[name]
    demo.OPTIMIZERS["frozen"] = (cls, {**hyper, "lr": 0.0}, label, make)
    try:
        frozen = demo.train(data, "frozen", epochs=2)
    finally:
        del demo.OPTIMIZERS["frozen"]
    assert frozen.test_accuracy[-1] < 0.3


def test_gradients_match_finite_differences(data):
    rng = np.random.default_rng(0)
    params = [p.astype(np.float64) for p in demo.init_mlp(n_hidden=8)]
    x, y = data.x_train[:16].astype(np.float64), data.y_train[:16]
    _, grads = demo.loss_and_grads(params, x, y)
    for p, g in zip(params, grads):
        for _ in range(3):
            idx = tuple(rng.integers(0, s) for s in p.shape)
            old = p[idx]
            p[idx] = old + 1e-6
            up, _ = demo.loss_and_grads(params, x, y)
            p[idx] = old - 1e-6
            down, _ = demo.loss_and_grads(params, x, y)
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-7)


def test_table_lists_every_run(data):
    results = [demo.train(data, name, epochs=1) for name in ("SGD", "Adam")]
    lines = demo.table(results).splitlines()
    assert lines[0].split()[:4] == ["optimizer", "schedule", "train", "acc"]
    assert [line.split()[0] for line in lines[2:]] == ["SGD", "Adam"]


def test_step_time_is_median_and_spread_over_every_step(data):
    result = demo.train(data, "SGD", epochs=2)
    assert len(result.step_seconds) == len(result.lr) == 2 * -(-len(data.y_train) // 64)
    median, low, high = result.step_time()
    assert median == pytest.approx(statistics.median(result.step_seconds), rel=1e-12)
    assert 0 < low <= median <= high <= max(result.step_seconds)
    assert f"{1e6 * median:.1f} [" in demo.table([result])


@pytest.mark.slow
def test_command_line_writes_table_and_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    out = subprocess.run(
        [sys.executable, "-m", "fastopt", "demo", "--epochs", "2", "--optimizers", "SGD,AdamW",
         "--png", str(png), "--no-progress"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "AdamW" in out.stdout and "test acc" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_rejects_unknown_optimizer():
    out = subprocess.run([sys.executable, "-m", "fastopt", "demo", "--optimizers", "Lion",
                          "--no-png", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "Lion" in out.stderr
