"""The ONNX model zoo's ResNet and VGG files (onnx/models, validated/vision/classification/
{resnet,vgg}). The zoo keeps them in Git LFS: each file's LFS pointer in the repository states
its sha256 and size, recorded here. Tried first through GitHub's LFS media host, then the
repository's raw path. The ResNets and VGGs were converted from MXNet Gluon (v1 = the
`_v1_pad1` network, v2 = pre-activation); vgg19-caffe2 from Caffe2. The int8 / QDQ files are
not listed: quantized graphs are refused (use --precision=int8 on the fp32 file). Accuracies:
the zoo's README tables (top-1 / top-5)."""
from resnet.hub.entry import Checksum, Download, Weights, add
from resnet.models.preprocessing import IMAGENET_RGB, Recipe

_PATH = "onnx/models/main/validated/vision/classification/"
MEDIA = "https://media.githubusercontent.com/media/" + _PATH
RAW = "https://github.com/" + _PATH.replace("/main/", "/raw/main/", 1)
STATED = "onnx/models Git LFS pointer (oid sha256, size)"

# name, path, sha256, size, top-1, top-5
_FILES = [
    ("resnet18_v1_pad1.onnx_zoo", "resnet/model/resnet18-v1-7.onnx",
     "4e8f8653e7a2222b3904cc3fe8e304cd8b339ce1d05fd24688162f86fb6df52c", 46820737, 69.93, 89.29),
    ("resnet34_v1_pad1.onnx_zoo", "resnet/model/resnet34-v1-7.onnx",
     "883a41b2e30ddc2e422c108b091b5e70b92d37dc5c345a2c563dcae27971e2cc", 87302588, 73.73, 91.40),
    ("resnet50_v1_pad1.onnx_zoo", "resnet/model/resnet50-v1-7.onnx",
     "af16a04a6ec48ac494065d4439fe9dea590d337b9ca6dc328160ccf04a217b9c", 102583340, 74.93,
     92.38),
    ("resnet101_v1_pad1.onnx_zoo", "resnet/model/resnet101-v1-7.onnx",
     "760702f6ec0138f71ebac66f4e95d1c72dc9267a8544f4d4667a53075fd0497c", 178914043, 76.48,
     93.20),
    ("resnet152_v1_pad1.onnx_zoo", "resnet/model/resnet152-v1-7.onnx",
     "b0ec92437bf8c9d0739bf9bafdea9638e13f9e3c1e2fb766ad546cc182fd3f6d", 241816206, 77.11,
     93.61),
    ("resnet50_v1_pad1.onnx_zoo_op12", "resnet/model/resnet50-v1-12.onnx",
     "3f03fdef724b22947eed826f1eef1dc5c34151bb4c37d634f1db89dfa2dd1526", 102576593, 74.97,
     92.33),
    ("resnet18_v2.onnx_zoo", "resnet/model/resnet18-v2-7.onnx",
     "3b4d048057854022232aa20bf68262e31718ab7119a17f920b8a2dc1433f824b", 46806737, 69.70, 89.49),
    ("resnet34_v2.onnx_zoo", "resnet/model/resnet34-v2-7.onnx",
     "3d3815e25f4b1ea967e2a526a3b27ef2a03af1725bdc199a63a271c26862d914", 87288587, 73.36, 91.43),
    ("resnet50_v2.onnx_zoo", "resnet/model/resnet50-v2-7.onnx",
     "79102261eb6e5fd7af5d27f41316293e388c5cb691e5d25bfb035c4f64fefe31", 102442452, 75.81,
     92.82),
    ("resnet101_v2.onnx_zoo", "resnet/model/resnet101-v2-7.onnx",
     "3a0a819ea0953fb4700b0d98e43540aeee253e5b4c503c552b0c7979fc67767d", 178682301, 77.42,
     93.61),
    ("resnet152_v2.onnx_zoo", "resnet/model/resnet152-v2-7.onnx",
     "40fb3f6dd313ba786a2c8077a0ef7d7b4afeda5d037365400d3a7fbc2b1bee64", 241503848, 78.20,
     94.21),
    ("vgg16.onnx_zoo", "vgg/model/vgg16-7.onnx",
     "f20805a3ecccaa88647bbab4ad011ff2412a9838485ea844de0fcbce349820b9", 553437328, 72.62, 91.14),
    ("vgg16_bn.onnx_zoo", "vgg/model/vgg16-bn-7.onnx",
     "4fdceabf1ef715c9ed3020fa2eac1cb2a448296c086b03633c80cf47e1c5afce", 553512191, 72.71, 91.21),
    ("vgg19.onnx_zoo", "vgg/model/vgg19-7.onnx",
     "692f9f927f1df1b89033787a77a73eac59fd9b3344f9ecdf0b13221e41c2046f", 574677321, 73.72, 91.58),
    ("vgg19_bn.onnx_zoo", "vgg/model/vgg19-bn-7.onnx",
     "ce0987dfa6228ad29708013f38b7f73cbc14ca6066a05fc22ee49b35871c63ed", 574774380, 73.83, 91.79),
    ("vgg16.onnx_zoo_op12", "vgg/model/vgg16-12.onnx",
     "722c42f53ca03a5480296bf8f9c85a151de3eed9ec982d7d2302ff6e2900c67b", 553437752, 72.38, 91.00),
    ("vgg19.onnx_caffe2", "vgg/model/vgg19-caffe2-9.onnx",
     "cfb97260b303ad3963999662456571b89c5f73dbdd2fd9dffd19fed7a90f766b", 574674712, None, None),
]
#: vgg19-caffe2: the zoo documents no preprocessing; Caffe's (BGR minus the mean pixel) is
#: what its conv1 expects, as for the Caffe VGG it was converted from
CAFFE_BGR = Recipe("BGR", 1.0)

for _name, _path, _sha256, _size, _top1, _top5 in _FILES:
    caffe2 = "caffe2" in _name
    add(Weights(
        _name, _name.split(".")[0], "onnx",
        (Download((MEDIA + _path, RAW + _path), Checksum("sha256", _sha256, STATED), _size),),
        publisher="ONNX model zoo", license="apache-2.0", top1=_top1, top5=_top5,
        accuracy_note="ONNX model zoo README" if _top1 else "not published by the zoo",
        recipe=CAFFE_BGR if caffe2 else IMAGENET_RGB,
        notes=("converted from Caffe2; preprocessing undocumented (Caffe's assumed)" if caffe2
               else f"{_path.rsplit('/', 1)[1]}, converted from MXNet Gluon")))
