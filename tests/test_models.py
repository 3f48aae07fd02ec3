import pytest
import torch
from torch import nn

from labkit import models
from labkit.errors import LabkitError


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 28, 28), (3, 32, 32)])
def test_small_cnn_shapes(shape):
    model = models.build("small-cnn", shape, 10)
    x = torch.rand(2, *shape)
    assert model(x).shape == (2, 10)
    assert model.embed(x).shape == (2, 128)
    assert model.conv_features(x).shape == (2, 64, shape[1] // 2, shape[2] // 2)


def test_thesis_resnet_has_three_groups_of_five_units():
    model = models.build("resnet", (3, 32, 32), 10)
    assert len(model.groups) == 15
    assert [model.groups[i].conv1.out_channels for i in (0, 5, 10)] == [16, 32, 64]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_group_norm_option_removes_batch_norm():
    for arch, shape in (("small-cnn", (1, 16, 16)), ("resnet", (3, 32, 32))):
        model = models.build(arch, shape, 10, norm="group")
        kinds = {type(m) for m in model.modules()}
        assert nn.GroupNorm in kinds and nn.BatchNorm2d not in kinds


def test_linear_model_and_same_seed_same_init():
    model = models.build("linear", (1, 8, 8), 10)
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    a = models.build("small-cnn", (1, 16, 16), 10, seed=4)
    b = models.build("small-cnn", (1, 16, 16), 10, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_rebuild_from_spec_and_state():
    model = models.build("small-cnn", (1, 16, 16), 10, seed=1)
    copy = models.rebuild(models.spec("small-cnn", (1, 16, 16), 10), model.state_dict())
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(copy(x), model.eval()(x))


def test_bad_choices_name_the_options():
    with pytest.raises(LabkitError, match="small-cnn, resnet, linear"):
        models.build("vgg", (1, 16, 16), 10)
    with pytest.raises(LabkitError, match="none, batch, group"):
        models.build("small-cnn", (1, 16, 16), 10, norm="layer")
    with pytest.raises(LabkitError, match="divisible by 4"):
        models.build("small-cnn", (1, 10, 10), 10)


def test_every_learned_module_lives_in_models_and_the_tanh_parameterisation_in_triggers():
    from labkit import triggers
    from labkit.attacks import blind, label_consistent, latent
    from labkit.defenses import neural_cleanse

    assert label_consistent.VGGStyle is models.VGGStyle and latent.VAE is models.VAE
    assert blind.TriggerModel is models.TriggerModel
    assert neural_cleanse.to_unit is triggers.to_unit and neural_cleanse.stamp is triggers.stamp
    trigger = models.TriggerModel((1, 8, 8), seed=0)
    assert torch.equal(trigger.mask(), torch.tanh(trigger.mask_logit) / 2 + 0.5)  # ε = 0: the evasion's own form
    raw = torch.linspace(-3, 3, 7)
    assert torch.equal(triggers.to_unit(raw), torch.tanh(raw) / (2 - 1e-7) + 0.5)  # Neural Cleanse's reference


def _tied_activations(shape, seed=0):
    """ReLU'd activations with the ties a real batch has: zero windows, constant patches, repeated integers."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(*shape, generator=gen))
    half = shape[-1] // 2
    x[:, :, :half, :half] = 0.3
    x[:, :, half:, half:] = torch.randint(0, 3, (shape[-2] - half, shape[-1] - half), generator=gen).float()
    return x


@pytest.mark.parametrize("shape", [(5, 32, 28, 28), (3, 64, 8, 8), (2, 16, 16, 16)])
def test_the_fast_max_pool_gives_max_pool2d_s_values_and_gradients_bit_for_bit(shape):
    pool, reference = models.MaxPool2x2(), nn.MaxPool2d(2)
    x = _tied_activations(shape)
    grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=torch.Generator().manual_seed(1))
    outputs, grads = [], []
    for layer in (pool, reference):
        leaf = x.clone().requires_grad_(True)
        out = layer(leaf)
        out.backward(grad)
        outputs.append(out)
        grads.append(leaf.grad)
    assert torch.equal(outputs[0], outputs[1]) and outputs[0].is_contiguous()
    assert torch.equal(grads[0], grads[1])  # each window's gradient goes to its first maximum, ties included
    with torch.no_grad():
        assert torch.equal(pool(x), reference(x))
    channels_last = x.contiguous(memory_format=torch.channels_last)  # Neural Cleanse's layout: max_pool2d itself
    assert torch.equal(pool(channels_last), reference(x))


def test_training_with_the_fast_max_pool_gives_the_same_weights_as_nn_max_pool2d():
    def trained(pool_layer):
        torch.manual_seed(0)
        model = models.SmallCNN(image_size=16, norm="group")
        model.pool = pool_layer
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(2)
        for _ in range(5):
            x = torch.rand(16, 1, 16, 16, generator=gen)
            x[:, :, :5, :5] = 0.0  # a blank corner: ties in every window there
            y = torch.randint(0, 10, (16,), generator=gen)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return model.state_dict()

    fast, reference = trained(models.MaxPool2x2()), trained(nn.MaxPool2d(2))
    assert all(torch.equal(fast[name], reference[name]) for name in reference)
