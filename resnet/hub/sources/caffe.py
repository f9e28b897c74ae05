"""The original Caffe models. Kaiming He's ResNet-50/101/152 (KaimingHe/deep-residual-networks,
MIT) are linked from OneDrive only; MXNet's Caffe converter (tools/caffe_converter/
convert_caffe_modelzoo.py) lists a copy on data.mxnet.io with the mean image, fetched here
over https. The Oxford VGG-16/19 (CC BY 4.0) come from the Oxford page. None of them
publishes a checksum: the sha256 of the first download is recorded in the cache.
Accuracies: the publishers' single-crop figures."""
from resnet.hub.entry import Download, Weights, add
from resnet.models.preprocessing import Recipe

MXNET = "https://data.mxnet.io/models/imagenet/test/caffe/"
OXFORD = "https://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/"
#: Caffe ResNet: BGR 0-255 minus ResNet_mean.binaryproto, centre 224 of the short side 256
RESNET_RECIPE = Recipe("BGR", 1.0, resize_short_side=256)
#: Caffe VGG: BGR minus the mean pixel, 224 input (the Oxford model card)
VGG_RECIPE = Recipe("BGR", 1.0)
MEAN = Download((MXNET + "ResNet_mean.binaryproto",), None, role="mean")

for _depth, _top1, _top5 in ((50, 75.3, 92.2), (101, 76.4, 92.9), (152, 77.0, 93.3)):
    add(Weights(
        f"resnet{_depth}_v1.caffe", f"resnet{_depth}_v1", "caffe",
        (Download((f"{MXNET}ResNet-{_depth}-model.caffemodel",), None), MEAN),
        publisher="Kaiming He (deep-residual-networks), MXNet's copy", license="mit",
        top1=_top1, top5=_top5,
        accuracy_note="deep-residual-networks README: 1-crop error, short side 256",
        recipe=RESNET_RECIPE))

for _depth in (16, 19):
    add(Weights(
        f"vgg{_depth}.caffe", f"vgg{_depth}", "caffe",
        (Download((f"{OXFORD}VGG_ILSVRC_{_depth}_layers.caffemodel",), None),),
        publisher="Oxford VGG (Simonyan & Zisserman)", license="cc-by-4.0",
        accuracy_note="Oxford model card gives dense multi-scale errors only",
        recipe=VGG_RECIPE))
