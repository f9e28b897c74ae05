"""`--job=download`: fetch, verify and convert pretrained weights by registry name into the
weights cache, and nothing else (preparing a machine that will run offline)."""
from __future__ import annotations

import logging

from resnet.jobs import job

log = logging.getLogger("resnet")


@job("download", needs=("model",), reads=("weights_file",))
def run(config) -> int:
    from resnet.hub import install

    name = config.model
    install.entry(name)  # an unknown name: one line naming the closest registered ones
    if install.installed(name) and not config.weights_file:
        log.info("%s: already in %s", name, install.model_dir(name))
    folder = install.ensure(name, config.weights_file)
    print(folder)  # for scripts: model/get_model.sh copies from here
    return 0
