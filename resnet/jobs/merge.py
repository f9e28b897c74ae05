"""`--job=merge`: join the shard-I-of-N folders of one sharded extract, in list order."""
from __future__ import annotations

from resnet.jobs import job


@job("merge", reads=("output_dir", "overwrite"))
def run(config) -> int:
    from resnet.outputs.merge import merge

    merge(config.output_dir, config.overwrite)
    return 0
