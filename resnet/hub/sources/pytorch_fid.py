"""pytorch-fid's FID Inception weights (src/pytorch_fid/inception.py `FID_WEIGHTS_URL`):
TensorFlow's 2015 Inception graph (`inception-2015-12-05.tgz`) ported to PyTorch, the network
FID scores are defined with. The file is named the torch.hub way, the first hex digits of its
sha256 after the last "-"; pytorch-fid itself loads it without checking. Its input:
bilinear resize to 299, scaled to [-1, 1]; features: pool3 (2048). It has 1008 outputs, not
ImageNet's 1000 in their order, so it has no accuracy and predict refuses it."""
from resnet.hub.entry import Download, Weights, add, sha256_prefix
from resnet.importers.inception_torch import FID_RECIPE

FILE = "pt_inception-2015-12-05-6726825d.pth"
URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FILE
STATED = "pytorch-fid inception.py FID_WEIGHTS_URL: the file name's hash (torch.hub's rule)"

add(Weights(
    "inception_v3_fid.pytorch_fid", "inception_v3_fid", "torchvision",
    (Download((URL,), sha256_prefix(FILE, STATED)),),
    publisher="pytorch-fid (Maximilian Seitzer)", license="apache-2.0",
    accuracy_note="none: a feature extractor for FID (1008 outputs)", recipe=FID_RECIPE,
    notes="TF 2015 Inception graph as FID defines it; default features pool3 (2048)"))
