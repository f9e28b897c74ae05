"""ResNet's key names in torchvision / timm (`.pth`, `.safetensors`), paddle.vision and
PaddleClas (`.pdparams`) state dicts: `layer{s-1}.{j-1}.conv1`, `downsample.0/1`, ...;
PaddleClas numbers its blocks across stages (`blocks.{index}.conv0`)."""
from resnet.importers._resnet import ResNetStyle
from resnet.importers.base import _PADDLE_BN, _TORCH_BN, add_styles

_TORCH_BRANCH = {"1": ("downsample.0", "downsample.1"), "2a": ("conv1", "bn1"),
                 "2b": ("conv2", "bn2"), "2c": ("conv3", "bn3")}
_CLAS_BRANCH = {"1": "short", "2a": "conv0", "2b": "conv1", "2c": "conv2"}


def _torch_block(stage, j, _, branch, kind):
    return f"layer{stage - 1}.{j - 1}.{_TORCH_BRANCH[branch][kind == 'bn']}"


def _clas_block(stage, j, index, branch, kind):
    return f"blocks.{index}.{_CLAS_BRANCH[branch]}.{kind}"


TORCHVISION = ResNetStyle("torchvision", {"conv": "conv1", "bn": "bn1"}, _torch_block,
                          _TORCH_BN, True, ignore=(".num_batches_tracked",))
PADDLE_VISION = ResNetStyle("paddle.vision", {"conv": "conv1", "bn": "bn1"}, _torch_block,
                            _PADDLE_BN, False)
PADDLE_CLAS = ResNetStyle("PaddleClas", {"conv": "stem.0.conv", "bn": "stem.0.bn"},
                          _clas_block, _PADDLE_BN, False)

add_styles({"torchvision": TORCHVISION}, "torchvision")
add_styles({"paddle.vision": PADDLE_VISION, "PaddleClas": PADDLE_CLAS}, "paddle")
# a .safetensors file may hold torchvision's or paddle.vision's layout
add_styles({"torchvision": TORCHVISION, "paddle.vision": PADDLE_VISION}, "safetensors")
