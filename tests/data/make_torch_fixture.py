"""Write the torch-made fixtures the .pth reader is proven on (needs torch; run once, commit).

    pip install torch==2.13.0   # CPU build; only to regenerate these files
    python tests/data/make_torch_fixture.py

torch_fixture.pth         torch.save of a state_dict (zip format, float32, torchvision key
                          names, int64 num_batches_tracked, the state_dict's _metadata)
torch_fixture_legacy.pth  the same modules in half precision plus a bfloat16 tensor, saved
                          in the pre-1.6 legacy (non-zip) format
torch_fixture.npz         the values each key must read back as (float32 / int64), by numpy
"""
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class Block(nn.Module):
    """torchvision's names for a first block of layer2 (reduced to what keeps this small)."""

    def __init__(self):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(128)
        self.downsample = nn.Sequential(nn.Conv2d(64, 128, 1, 2, bias=False), nn.BatchNorm2d(128))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer2 = nn.Sequential(Block())
        self.fc = nn.Linear(512, 10)  # torchvision's (out, in) layout; 1000 classes in a real one


def main():
    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.2, 0.6)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(12345)
    expected = {}
    state = net.state_dict()
    torch.save(state, os.path.join(HERE, "torch_fixture.pth"))
    expected.update({f"zip/{k}": v.numpy() for k, v in state.items()})

    half = net.half().state_dict()
    half["extra.bfloat16"] = torch.linspace(-3, 3, 7).to(torch.bfloat16)
    torch.save(half, os.path.join(HERE, "torch_fixture_legacy.pth"),
               _use_new_zipfile_serialization=False)
    expected.update({f"legacy/{k}": (v.float() if v.is_floating_point() else v).numpy()
                     for k, v in half.items()})
    np.savez_compressed(os.path.join(HERE, "torch_fixture.npz"), **expected)
    print(f"torch {torch.__version__}: wrote {len(expected)} tensors", file=sys.stderr)


if __name__ == "__main__":
    main()
