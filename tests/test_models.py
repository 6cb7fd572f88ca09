"""models: the study CNN's exact architecture, ResNet-18, the input transform."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synth.training import StudyCNN, build_model, to_input


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("n_classes", [3, 5])
def test_study_cnn_output_shape(size, n_classes):
    model = StudyCNN(n_classes, size).eval()
    assert model(to_input(_images(4, size))).shape == (4, n_classes)


def test_study_cnn_parameter_count_matches_hand_arithmetic():
    conv1 = 3 * 32 * 3 * 3 + 32  # 896
    conv2 = 32 * 64 * 3 * 3 + 64  # 18,496
    # padding=1 keeps 64x64; two 2x2 pools -> 16x16 with 64 channels = 16,384 features
    fc1 = 64 * 16 * 16 * 128 + 128  # 2,097,280
    fc2 = 128 * 3 + 3  # 387
    assert conv1 + conv2 + fc1 + fc2 == 2_117_059
    model = StudyCNN(3, 64)
    assert sum(p.numel() for p in model.parameters()) == 2_117_059


def test_study_cnn_layer_order_is_the_studys():
    kinds = [type(m) for m in StudyCNN(3, 64).modules() if not list(m.children())]
    assert kinds == [
        nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d,
        nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear,
    ]  # fmt: skip
    convs = [m for m in StudyCNN(3, 64).modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.padding) for c in convs] == [((3, 3), (1, 1))] * 2
    dropout = next(m for m in StudyCNN(3, 64).modules() if isinstance(m, nn.Dropout))
    assert dropout.p == 0.5


def test_study_cnn_activations_are_distinct_and_not_inplace():
    # SHAP DeepExplainer hooks each module once; a shared or inplace ReLU breaks its gradients.
    model = StudyCNN(3, 64)
    acts = [m for m in model.modules() if isinstance(m, nn.ReLU | nn.MaxPool2d)]
    assert len(acts) == 5
    assert len({id(m) for m in acts}) == 5
    assert not any(getattr(m, "inplace", False) for m in acts)


def test_study_cnn_init_is_xavier_uniform_with_zero_bias():
    torch.manual_seed(0)
    model = StudyCNN(3, 64)
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
            bound = (6 / (fan_in + fan_out)) ** 0.5
            assert layer.weight.abs().max() <= bound
            # uniform on [-b, b] fills most of the range (PyTorch's default is much narrower)
            assert layer.weight.abs().max() > 0.9 * bound
            assert torch.count_nonzero(layer.bias) == 0


def test_build_model_resnet18_output_shape():
    model = build_model("resnet18", 5, 64, None).eval()
    assert model(to_input(_images(2, 64))).shape == (2, 5)


def test_build_model_resnet18_loads_local_backbone_weights(tmp_path):
    from torchvision.models import resnet18

    source = resnet18(weights=None)  # stands in for ImageNet weights: 1000-class head
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    model = build_model("resnet18", 3, 64, str(path))
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 3


def test_build_model_rejects_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("resnet18", 3, 64, str(tmp_path / "nope.pt"))


def test_build_model_rejects_unknown_name():
    with pytest.raises(ValueError, match="`name` must be one of"):
        build_model("vgg16", 3, 64, None)  # type: ignore[arg-type]


def test_to_input_scales_uint8_to_minus_one_one():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).reshape(1, 3, 1, 1)
    out = to_input(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out.flatten(), torch.tensor([-1.0, 1.0, -0.6]))


def test_to_input_rejects_float_images():
    with pytest.raises(TypeError, match="uint8"):
        to_input(torch.zeros(1, 3, 4, 4))
