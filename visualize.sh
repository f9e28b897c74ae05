#!/usr/bin/env bash
# Draw the network like the v1 demo's net_diagram.sh: by default ResNet-50 as resnet_50.dot and
# resnet_50.png in the current folder (rendered with Graphviz `dot`). Any flag of
# `python -m resnet --job=diagram` may follow, e.g. --layer_num=152 --compact
# --output=resnet_152.svg --output_layer=res5_3_branch2c_bn (highlighted), or --arch=vgg16
# (vgg16.dot and vgg16.png, one cluster per block).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m resnet --job=diagram "$@"
