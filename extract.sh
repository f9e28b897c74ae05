#!/usr/bin/env bash
# Extract features of example/test.list like the v1 demo's extract_fea_py.sh.
# Any flag of `python -m resnet --job=extract` may follow and overrides these defaults.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JOB=extract
DEFAULTS=(--data="$HERE/example/test.list" --output_dir=output)
# With the demo model and no --output_dir given: meaningless features go to their own folder,
# replaced on each demo run (a folder you name is never overwritten without --overwrite).
DEMO_OUTPUT=output_demo
source "$HERE/resnet/wrapper.sh"
