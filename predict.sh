#!/usr/bin/env bash
# 10-crop predictions for example/test.list like the v1 demo's predict.sh.
# Any flag of `python -m resnet --job=predict` may follow and overrides these defaults.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JOB=predict
DEFAULTS=(--data="$HERE/example/test.list" --multi_crop=1)
source "$HERE/resnet/wrapper.sh"
