"""Keras applications' ImageNet weights (keras/src/applications/resnet.py `WEIGHTS_HASHES`,
vgg16.py, vgg19.py, inception_v3.py and xception.py `file_hash`: the md5 that
keras.utils.get_file checks). The full (include_top) files. Keras' ResNet keeps the Caffe stride
but pads its max pool by one and gives every conv a bias: the `_v1_pad1` network. Keras'
InceptionV3 averages its block pools without the padding: the `inception_v3_keras` network.
ResNet50V2/101V2/152V2 are a different pre-activation network that the Keras importer refuses,
so they are not listed. Accuracies: the keras.io applications table (top-1 / top-5, single
crop)."""
from resnet.hub.entry import Checksum, Download, Weights, add
from resnet.models.preprocessing import KERAS_CAFFE, KERAS_TF_299

HOST = "https://storage.googleapis.com/tensorflow/keras-applications/"
STATED = "Keras applications source (keras/src/applications/{module}.py)"
RESNET_LICENSE = "mit (Kaiming He's weights, ported by Keras)"
VGG_LICENSE = "cc-by-4.0 (the Oxford VGG weights, ported by Keras)"
KERAS_LICENSE = "apache-2.0 (trained by the Keras team)"
CAFFE_NOTE = "'caffe' preprocessing with load_img's direct, nearest-neighbour 224 resize"
TF_NOTE = "'tf' preprocessing ([-1, 1]) with load_img's direct, nearest-neighbour 299 resize"

# name, path under HOST, md5, module, license, top-1, top-5
_FILES = [
    ("resnet50_v1_pad1.keras", "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
     "2cb95161c43110f7111970584f804107", "resnet", RESNET_LICENSE, 74.9, 92.1),
    ("resnet101_v1_pad1.keras", "resnet/resnet101_weights_tf_dim_ordering_tf_kernels.h5",
     "f1aeb4b969a6efcfb50fad2f0c20cfc5", "resnet", RESNET_LICENSE, 76.4, 92.8),
    ("resnet152_v1_pad1.keras", "resnet/resnet152_weights_tf_dim_ordering_tf_kernels.h5",
     "100835be76be38e30d865e96f2aaae62", "resnet", RESNET_LICENSE, 76.6, 93.1),
    ("vgg16.keras", "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
     "64373286793e3c8b2b4e3219cbf3544b", "vgg16", VGG_LICENSE, 71.3, 90.1),
    ("vgg19.keras", "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5",
     "cbe5617147190e668d6c5d5026f83318", "vgg19", VGG_LICENSE, 71.3, 90.0),
    ("inception_v3_keras.keras", "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
     "9a0d58056eeedaa3f26cb7ebd46da564", "inception_v3", KERAS_LICENSE, 77.9, 93.7),
    ("xception.keras", "xception/xception_weights_tf_dim_ordering_tf_kernels.h5",
     "0a58e3b7378bc2990ea3b43d5981f1f6", "xception", KERAS_LICENSE, 79.0, 94.5),
]

for _name, _path, _md5, _module, _license, _top1, _top5 in _FILES:
    _tf = _module in ("inception_v3", "xception")
    add(Weights(
        _name, _name.split(".")[0], "keras",
        (Download((HOST + _path,), Checksum("md5", _md5, STATED.format(module=_module))),),
        publisher="Keras applications", license=_license, top1=_top1, top5=_top5,
        accuracy_note="keras.io applications table", recipe=KERAS_TF_299 if _tf else KERAS_CAFFE,
        notes=TF_NOTE if _tf else CAFFE_NOTE))
