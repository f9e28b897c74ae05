#!/usr/bin/env bash
# Download the v1 model-zoo ResNets and the ImageNet mean file into this folder.
#
#   ./get_model.sh            ResNet-50 and the mean file
#   ./get_model.sh 101 152    those depths and the mean file
#   ./get_model.sh all        50, 101, 152 and the mean file
#
# Each depth is the weights registry's entry resnetN_v1.paddle_v1, fetched by
# `python -m resnet --job=download` into the weights cache (~/.cache/resnet/weights, or
# RESNET_WEIGHTS_DIR): a cut download resumes, the archive is checked (the v1 zoo publishes
# no checksum, so the sha256 of the first download is recorded in the cache and every later
# download must match it), unpacked and validated there. The v1 files are then copied here
# (resnet_N/ and mean_meta_224/mean.meta, the v1 zoo's layout) and moved into place whole,
# so an interrupted or failed download never leaves a half model behind.
# RESNET_MODEL_URL: a mirror or a local folder (file:///path) holding the archives.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-python3}
export PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}"
[ -n "${RESNET_MODEL_URL:-}" ] && export RESNET_WEIGHTS_MIRROR="$RESNET_MODEL_URL"

die() { echo "get_model.sh: $*" >&2; exit 1; }

depths=()
for arg in "${@:-50}"; do
  case "$arg" in
    50|101|152) depths+=("$arg") ;;
    all) depths=(50 101 152) ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown argument '$arg': use 50, 101, 152 or all" ;;
  esac
done

work=$(mktemp -d "$HERE/.download.XXXXXX") || die "cannot write to $HERE"
trap 'rm -rf "$work"' EXIT

for depth in "${depths[@]}"; do
  name="resnet${depth}_v1.paddle_v1"
  echo "get_model.sh: fetching $name (ResNet-$depth of the v1 zoo)"
  out=$("$PY" -m resnet --job=download --model="$name") \
    || die "cannot download $name (see above). Check your connection or set \
RESNET_MODEL_URL to a mirror or a local folder (file:///path/to/archives)."
  cached=${out##*$'\n'}  # its last line: the cache folder
  [ -d "$cached" ] || die "$name: the download job printed no folder"
  mkdir -p "$work/resnet_$depth" "$work/mean_meta_224"
  for f in "$cached"/*; do
    case "$(basename "$f")" in
      model.json) ;;
      mean.meta) cp "$f" "$work/mean_meta_224/mean.meta" || die "cannot copy $f" ;;
      *) cp "$f" "$work/resnet_$depth/" || die "cannot copy $f" ;;
    esac
  done
  "$PY" -m resnet --job=check --layer_num="$depth" --model="$work/resnet_$depth" \
    --mean="$work/mean_meta_224/mean.meta" \
    || die "resnet_$depth: the copied model is not a valid ResNet-$depth (see above)"
done

install() {  # install NAME: move the checked folder into place
  rm -rf "$HERE/$1.old"
  [ -e "$HERE/$1" ] && mv "$HERE/$1" "$HERE/$1.old"
  mv "$work/$1" "$HERE/$1" && rm -rf "$HERE/$1.old"
  echo "get_model.sh: installed $HERE/$1"
}

install mean_meta_224
for depth in "${depths[@]}"; do install "resnet_$depth"; done
echo "get_model.sh: done. Try: ./extract.sh or ./predict.sh"
