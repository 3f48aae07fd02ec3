import pytest
import torch

from labkit import models, train


def _toy(n=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    x = torch.rand(n, 1, 8, 8, generator=gen) * 0.2
    x[y == 1, :, :4] += 0.8  # class 1 has a bright top half
    return x.clamp(0, 1), y


def test_training_learns_and_reports_history():
    x, y = _toy()
    model = models.build("linear", (1, 8, 8), 2, seed=0)
    history = train.train(model, x, y, epochs=5, lr=0.05, seed=0, eval_sets={"train": (x, y)},
                          track=lambda m, epoch: {"double": 2 * epoch}, progress=False)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["train_accuracy"] > 0.95 and history[-1]["double"] == 10
    assert train.accuracy(model, x, y) == history[-1]["train_accuracy"]


def test_same_seed_same_weights_even_with_augmentation():
    x, y = _toy(64)
    runs = []
    for _ in range(2):
        model = models.build("small-cnn", (1, 8, 8), 2, seed=3)
        train.train(model, x, y, epochs=2, batch_size=16, seed=3, augment=True, progress=False)
        runs.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_augmenter_crops_and_flips_per_image():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 16, 16)
    out = train.augmenter(16)(x)
    assert out.shape == x.shape
    changed = [not torch.equal(a, b) for a, b in zip(out, x)]
    assert any(changed) and not all(torch.equal(out[0], o) for o in out[1:])


def test_evaluation_helpers():
    x, y = _toy(30)
    model = models.build("linear", (1, 8, 8), 2, seed=0)
    probs = train.predict_proba(model, x)
    assert probs.shape == (30, 2) and torch.allclose(probs.sum(1), torch.ones(30))
    assert torch.equal(train.predict(model, x), probs.argmax(1))
    assert train.per_sample_loss(model, x, y).shape == (30,)


def test_cosine_schedule_falls_to_zero_over_all_steps_and_constant_keeps_the_rate():
    model = models.build("linear", (1, 8, 8), 2, seed=0)
    opt = train.make_optimizer(model, "sgd", 0.01)
    cosine = train.make_schedule(opt, "cosine", total_steps=10)
    rates = []
    for _ in range(10):
        opt.step()
        cosine.step()
        rates.append(opt.param_groups[0]["lr"])
    assert rates[0] < 0.01 and all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] == 0.0
    opt = train.make_optimizer(model, "sgd", 0.01)
    constant = train.make_schedule(opt, "constant", total_steps=10)
    for _ in range(3):
        opt.step()
        constant.step()
    assert opt.param_groups[0]["lr"] == 0.01


def test_cosine_training_runs_and_an_unknown_schedule_names_the_choices():
    x, y = _toy(64)
    model = models.build("linear", (1, 8, 8), 2, seed=0)
    history = train.train(model, x, y, epochs=2, batch_size=16, lr=0.05, lr_schedule="cosine", progress=False)
    assert len(history) == 2
    with pytest.raises(ValueError, match="constant, cosine"):
        train.train(model, x, y, epochs=1, lr_schedule="step", progress=False)


def test_the_hooks_replace_the_loss_transform_the_batch_and_step_in_after_backward():
    x, y = _toy(64)
    seen = {"loss": 0, "transform": [], "after": []}

    def loss_fn(model, xb, yb):
        seen["loss"] += 1
        return torch.nn.functional.cross_entropy(model(xb), 1 - yb)  # a different task: flipped labels

    def flip_images(model, xb, yb, epoch, idx):
        seen["transform"].append((epoch, len(idx)))
        return xb.flip(-1)

    def after_backward(model, batch):
        assert all(p.grad is not None for p in model.parameters())
        seen["after"].append(batch)

    model = models.build("linear", (1, 8, 8), 2, seed=0)
    train.train(model, x, y, epochs=2, batch_size=16, lr=0.05, loss_fn=loss_fn, batch_transform=flip_images,
                after_backward=after_backward, progress=False)
    assert seen["loss"] == 8 and seen["after"] == [16] * 8
    assert [e for e, _ in seen["transform"]] == [1] * 4 + [2] * 4
    assert train.accuracy(model, x.flip(-1), 1 - y) > 0.9  # it learned the hooked task


def test_backward_is_called_only_by_the_training_loop_and_the_algorithms_that_are_the_lesson():
    """One training loop (`train.run_epochs`; DP-SGD's Opacus lots go through it too): other `backward()` calls
    are inner optimisations the papers teach (Neural Cleanse's mask search, the VAE latent search) or
    benchmarks timing a pass. (blind.py names `loss.backward()` in its docstring only.)"""
    from pathlib import Path

    package = Path(train.__file__).parent
    callers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                     if ".backward()" in p.read_text() and p.parts[-2] != "bench")
    assert callers == ["attacks/blind.py", "attacks/latent.py", "defenses/neural_cleanse.py", "train.py"]
    assert (package / "train.py").read_text().count(".backward()") == 1  # in run_epochs alone
    assert "loss.backward()" not in (package / "attacks" / "blind.py").read_text().split('"""', 2)[2]


def _eval_models():
    """The lab's image classifiers, in eval mode, on MNIST-sized input."""
    torch.manual_seed(0)
    return {"small-cnn": models.SmallCNN(image_size=28), "small-cnn-group": models.SmallCNN(image_size=28, norm="group"),
            "small-cnn-batch": models.SmallCNN(image_size=28, norm="batch"), "vgg": models.VGGStyle(1, 10, 28),
            "resnet": models.ResNet(1, 10)}


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", list(_eval_models()))
@pytest.mark.parametrize("count", [300, 65, 70, 130])
def test_evaluating_in_chunks_gives_one_pass_s_logits_bit_for_bit(name, count, threads):
    """EVAL_BATCH may be small for speed because each image's logits depend on that image alone — in batches of
    SMALLEST_CHUNK or more: 65, 70 and 130 images would leave a last chunk of 1, 6 or 2, which oneDNN computes with
    other kernels, so it joins the chunk before it."""
    model = _eval_models()[name].eval()
    x = torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    one_pass = train.logits(model, x, batch_size=len(x))
    assert torch.equal(train.logits(model, x), one_pass)
    assert torch.equal(train.logits(model, x, batch_size=100), one_pass)
    assert torch.equal(train.forward_in_chunks(model, x).detach(), one_pass)


def test_a_short_last_chunk_joins_the_one_before_it():
    sizes = [[len(c) for c in train.chunks(torch.zeros(n))] for n in (10, 64, 65, 79, 80, 130)]
    assert sizes == [[10], [64], [65], [79], [64, 16], [64, 66]]


@pytest.mark.parametrize("count", [320, 70])
def test_input_gradients_through_chunks_are_one_pass_s_bit_for_bit(count, threads):
    """Neural Cleanse and PGD take gradients with respect to the input through `forward_in_chunks`."""
    model = models.SmallCNN(image_size=28).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.rand(count, 1, 28, 28, generator=gen), torch.randint(0, 10, (count,), generator=gen)

    def input_gradient(forward):
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(forward(xg), y, reduction="sum"), xg)
        return grad
    assert torch.equal(input_gradient(lambda v: train.forward_in_chunks(model, v)), input_gradient(model))


def test_chunked_forward_refuses_a_batchnorm_model_in_training_mode():
    model = models.SmallCNN(image_size=28, norm="batch").train()
    with pytest.raises(ValueError, match="eval mode"):
        train.forward_in_chunks(model, torch.rand(4, 1, 28, 28))
