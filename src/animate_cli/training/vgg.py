"""VGG19 ``features`` in plain torch, for the perceptual loss, with weights read from a local file only.

torchvision is not a dependency (and nothing is downloaded), so the layers are rebuilt here with torchvision's
indices, which makes its ``vgg19-dcbfe0e3.pth`` state dict (``features.{0,2,5,...}.weight/bias``) load as is.
Only the layers up to relu5_1 are built; the rest of the file (deeper convolutions, classifier) is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from animate_cli.errors import CheckpointError

# torchvision's VGG19 configuration "E": output channels of each 3x3 convolution, "M" a 2x2 max pool
_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# index one past relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in the ``features`` sequence (FACTS §9)
SLICE_ENDS = (2, 7, 12, 21, 30)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENV_VARIABLE = "ANIMATE_VGG19_WEIGHTS"


def default_weight_paths() -> list[Path]:
    cache = Path.home() / ".cache" / "animate-cli"
    return [cache / "vgg19.safetensors", cache / "vgg19.pth"]


class VGG19Features(nn.Module):
    """ImageNet-normalised VGG19 activations after relu1_1 .. relu5_1, frozen and in eval mode.

    forward: x (B, 3, H, W) in [0, 1] -> 5 tensors (B, 64, H, W), (B, 128, H/2, W/2), (B, 256, H/4, W/4),
    (B, 512, H/8, W/8), (B, 512, H/16, W/16).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Always eval: the perceptual network is a fixed measuring device, not something being trained."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        outputs = []
        start = 0
        for end in SLICE_ENDS:
            for index in range(start, end):
                out = self.features[index](out)
            outputs.append(out)
            start = end
        return outputs


def find_vgg19_weights(explicit: str | Path | None = None) -> Path | None:
    """Where the VGG19 weights are: ``explicit``, else $ANIMATE_VGG19_WEIGHTS, else the first existing default path.

    An explicit path or the environment variable naming a missing file is an error; no defaults found gives None.
    """
    for named, origin in ((explicit, "--vgg19"), (os.environ.get(ENV_VARIABLE) or None, ENV_VARIABLE)):
        if named is not None:
            path = Path(named).expanduser()
            if not path.is_file():
                raise CheckpointError(f"VGG19 weights {path} (from {origin}): no such file")
            return path
    return next((path for path in default_weight_paths() if path.is_file()), None)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"VGG19 weights {path}: not a readable safetensors file: {error}") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load reports a damaged or foreign file with many exception types (UnpicklingError, RuntimeError,
    # EOFError, BadZipFile, struct.error...); for a weights file they all mean the same
    except Exception as error:  # noqa: BLE001
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"VGG19 weights {path}: not a readable weights file: {first_line[:160]}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"VGG19 weights {path}: expected a state dict, found {type(data).__name__}")
    return data


def load_vgg19(path: str | Path) -> VGG19Features:
    """VGG19Features with the ``features.*`` tensors of a torchvision-layout state dict (.pth or .safetensors)."""
    path = Path(path)
    state = _read_state_dict(path)
    model = VGG19Features()
    expected = model.state_dict()
    for key, tensor in expected.items():
        found = state.get(key)
        if not isinstance(found, torch.Tensor):
            raise CheckpointError(f"VGG19 weights {path}: missing tensor '{key}' (torchvision vgg19 layout expected)")
        if found.shape != tensor.shape:
            raise CheckpointError(
                f"VGG19 weights {path}: '{key}' has shape {list(found.shape)}, VGG19 needs {list(tensor.shape)}"
            )
    model.load_state_dict({key: state[key].float() for key in expected})
    return model
