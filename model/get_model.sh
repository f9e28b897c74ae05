#!/usr/bin/env bash
# Download the v1 model-zoo ResNets and the ImageNet mean file into this folder.
#
#   ./get_model.sh            ResNet-50 and the mean file
#   ./get_model.sh 101 152    those depths and the mean file
#   ./get_model.sh all        50, 101, 152 and the mean file
#
# Each archive is downloaded to a temporary file, checked (SHA256SUMS beside this script,
# when it lists the archive; the gzip/tar structure always), unpacked into a temporary
# folder, validated with `python -m resnet --job=check`, and only then moved into place,
# so an interrupted or failed download never leaves a half model behind.
# RESNET_MODEL_URL overrides the download location (a mirror, or file:// for a local copy).
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE_URL=${RESNET_MODEL_URL:-http://paddlepaddle.bj.bcebos.com/model_zoo/imagenet}
SUMS=${RESNET_MODEL_SUMS:-$HERE/SHA256SUMS}
PY=${PYTHON:-python3}
export PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}"

die() { echo "get_model.sh: $*" >&2; exit 1; }

depths=()
for arg in "${@:-50}"; do
  case "$arg" in
    50|101|152) depths+=("$arg") ;;
    all) depths=(50 101 152) ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument '$arg': use 50, 101, 152 or all" ;;
  esac
done

work=$(mktemp -d "$HERE/.download.XXXXXX") || die "cannot write to $HERE"
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch NAME -> unpacks NAME.tar.gz into $work/NAME.unpacked
  local name=$1 url="$BASE_URL/$1.tar.gz" file="$work/$1.tar.gz"
  echo "get_model.sh: downloading $url"
  local show=-sS
  [ -t 2 ] && show=--progress-bar
  if ! curl -fL $show --connect-timeout 20 --retry 2 -o "$file" "$url"; then
    die "cannot download $url (no network, or the server refused). Check your connection or \
set RESNET_MODEL_URL to a mirror or a local folder (file:///path/to/archives)."
  fi
  if [ -f "$SUMS" ] && grep -q " $name.tar.gz\$" "$SUMS"; then
    local want got
    want=$(grep " $name.tar.gz\$" "$SUMS" | head -n1 | cut -d' ' -f1)
    got=$(sha256sum "$file" | cut -d' ' -f1)
    [ "$want" = "$got" ] || die "$name.tar.gz: checksum mismatch (expected $want, got $got); \
the download is corrupt or not the published archive"
    echo "get_model.sh: $name.tar.gz checksum ok"
  else
    echo "get_model.sh: $name.tar.gz sha256 $(sha256sum "$file" | cut -d' ' -f1) (not listed in $SUMS)"
  fi
  tar -tzf "$file" >/dev/null 2>&1 || die "$name.tar.gz: not a valid .tar.gz archive (truncated download?)"
  mkdir -p "$work/$name.unpacked"
  tar -xzf "$file" -C "$work/$name.unpacked" || die "$name.tar.gz: cannot unpack"
  [ -d "$work/$name.unpacked/$name" ] || die "$name.tar.gz: archive has no $name/ folder"
}

install() {  # install NAME: move the checked folder into place
  rm -rf "$HERE/$1.old"
  [ -e "$HERE/$1" ] && mv "$HERE/$1" "$HERE/$1.old"
  mv "$work/$1.unpacked/$1" "$HERE/$1" && rm -rf "$HERE/$1.old"
  echo "get_model.sh: installed $HERE/$1"
}

fetch mean_meta_224
[ -f "$work/mean_meta_224.unpacked/mean_meta_224/mean.meta" ] \
  || die "mean_meta_224.tar.gz: no mean_meta_224/mean.meta inside"
for depth in "${depths[@]}"; do
  fetch "resnet_$depth"
  "$PY" -m resnet --job=check --layer_num="$depth" --model="$work/resnet_$depth.unpacked/resnet_$depth" \
    --mean="$work/mean_meta_224.unpacked/mean_meta_224/mean.meta" \
    || die "resnet_$depth.tar.gz: the unpacked model is not a valid ResNet-$depth (see above)"
done
install mean_meta_224
for depth in "${depths[@]}"; do install "resnet_$depth"; done
echo "get_model.sh: done. Try: ./extract.sh or ./predict.sh"
