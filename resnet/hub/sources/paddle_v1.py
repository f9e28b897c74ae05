"""The PaddlePaddle v1 model zoo's ResNets: tar.gz archives of the v1 parameter files plus the
ImageNet mean image, at the location v1's get_model.sh used (its host serves https too; the
zoo publishes no checksum, so the sha256 of the first download is recorded in the cache).
Accuracy: v1's published single-crop top-1 error (short side 256, centre crop)."""
from resnet.hub.entry import Download, Weights, add
from resnet.models.preprocessing import V1

HOST = "https://paddlepaddle.bj.bcebos.com/model_zoo/imagenet/"
MEAN = Download((HOST + "mean_meta_224.tar.gz",), None, role="mean",
                member="mean_meta_224/mean.meta")

for _depth, _error in ((50, 24.9), (101, 23.7), (152, 23.2)):
    add(Weights(
        f"resnet{_depth}_v1.paddle_v1", f"resnet{_depth}_v1", "paddle_v1",
        (Download((f"{HOST}resnet_{_depth}.tar.gz",), None, member=f"resnet_{_depth}"), MEAN),
        publisher="the PaddlePaddle v1 model zoo", license="apache-2.0",
        top1=round(100 - _error, 1),
        accuracy_note="v1 model zoo docs: single crop, short side 256, centre 224",
        recipe=V1, notes="converted by the v1 team from Kaiming He's Caffe models"))
