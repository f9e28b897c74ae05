"""paddle.vision's ImageNet weights (python/paddle/vision/models/resnet.py, vgg.py and
inceptionv3.py, `model_urls`: each URL with the md5 that paddle.utils.download checks).
paddle.vision publishes no accuracy for them; only VGG-16 and VGG-19 without batch norm have
weights. Its Inception v3 keeps Paddle's BN eps 1e-5: the `inception_v3_paddle` network."""
from resnet.hub.entry import Checksum, Download, Weights, add
from resnet.importers.inception_torch import PADDLE_RECIPE
from resnet.models.preprocessing import IMAGENET_RGB

HOST = "https://paddle-hapi.bj.bcebos.com/models/"
STATED = "paddle.vision models/*.py model_urls"

_MD5 = {
    "resnet18": "cf548f46534aa3560945be4b95cd11c4",
    "resnet34": "8d2275cf8706028345f78ac0e1d31969",
    "resnet50": "ca6f485ee1ab0492d38f323885b0ad80",
    "resnet101": "02f35f034ca3858e1e54d4036443c92d",
    "resnet152": "7ad16a2f1e7333859ff986138630fd7a",
    "vgg16": "89bbffc0f87d260be9b8cdc169c991c4",
    "vgg19": "23b18bb13d8894f60f54e642be79a0dd",
    "inception_v3": "649a4547c3243e8b59c656f41fe330b8",
}
#: the registered network of a paddle.vision file, where it is not the file's own name
_ARCH = {"inception_v3": "inception_v3_paddle"}

for _file, _md5 in _MD5.items():
    _arch = _ARCH.get(_file, _file)
    add(Weights(
        f"{_arch}.paddle", _arch, "paddle",
        (Download((f"{HOST}{_file}.pdparams",), Checksum("md5", _md5, STATED)),),
        publisher="paddle.vision", license="apache-2.0",
        accuracy_note="not published by paddle.vision",
        recipe=PADDLE_RECIPE if _file == "inception_v3" else IMAGENET_RGB,
        notes="paddle.vision documents no evaluation recipe; torchvision's is assumed"))
