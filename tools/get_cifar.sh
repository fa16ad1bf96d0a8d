#!/usr/bin/env bash
# get_cifar.sh — fetch, verify (MD5) and unpack the official CIFAR-10 / CIFAR-100 binary archives.
#
# Usage: tools/get_cifar.sh [--cifar10 | --cifar100 | --all] [--keep-archive] [DEST]
#   DEST defaults to ./data. Afterwards:
#     DEST/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin, batches.meta.txt
#     DEST/cifar-100-binary/{train,test}.bin, fine_label_names.txt, coarse_label_names.txt
#   and `vit_train --dataset cifar10 --data-dir DEST` (or the default ./data) finds them.
#
# Without internet: download the archive elsewhere, copy it to DEST/ (same file
# name) and run this script again; it verifies and unpacks what is already there.
set -euo pipefail

CIFAR10_URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5="c32a1d4ab5d03f1284b67883e8d87530"
CIFAR100_URL="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
CIFAR100_MD5="03b5dce01913d631647c71ecec9e9cb8"

die() { echo "get_cifar.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

want10=0; want100=0; keep=0; dest=""
for arg in "$@"; do
  case "$arg" in
    --cifar10) want10=1 ;;
    --cifar100) want100=1 ;;
    --all) want10=1; want100=1 ;;
    --keep-archive) keep=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option $arg" ;;
    *) [ -z "$dest" ] || die "more than one destination given ($dest, $arg)"; dest="$arg" ;;
  esac
done
[ "$want10$want100" = "00" ] && { want10=1; want100=1; }
dest="${dest:-./data}"
mkdir -p "$dest" || die "cannot create $dest"

command -v md5sum >/dev/null || die "md5sum not found (coreutils)"
command -v tar >/dev/null || die "tar not found"

download() {  # url file
  local url="$1" file="$2" part="$2.part" log="$2.log" why=""
  if command -v curl >/dev/null; then
    curl -fsSL --connect-timeout 15 --retry 2 -o "$part" "$url" 2>"$log" || why=$(tail -n1 "$log")
  elif command -v wget >/dev/null; then
    wget -q --timeout=15 --tries=2 -O "$part" "$url" 2>"$log" || why="wget: $(tail -n1 "$log") (exit $?)"
  else
    die "neither curl nor wget is installed; fetch $url elsewhere, copy it to $file and rerun"
  fi
  rm -f "$log"
  if [ -n "$why" ]; then
    rm -f "$part"
    die "cannot download $url (${why:-failed}); no internet here? Fetch it elsewhere, copy it to $file and rerun"
  fi
  mv "$part" "$file"
}

check_size() {  # file bytes
  [ -f "$1" ] || die "$1 missing after unpacking"
  local size; size=$(stat -c %s "$1")
  [ "$size" = "$2" ] || die "$1 is $size bytes, expected $2"
}

fetch() {  # name url md5 folder files...
  local name="$1" url="$2" md5="$3" folder="$4"; shift 4
  local archive; archive="$dest/$(basename "$url")"
  if [ -d "$dest/$folder" ] && [ -f "$dest/$folder/$(echo "$1" | cut -d: -f1)" ]; then
    echo "$name: $dest/$folder already present, checking file sizes"
  else
    if [ -f "$archive" ]; then
      echo "$name: using $archive already there"
    else
      echo "$name: downloading $url"
      download "$url" "$archive"
    fi
    echo "$name: verifying MD5 of $archive"
    local got; got=$(md5sum "$archive" | cut -d' ' -f1)
    [ "$got" = "$md5" ] || die "$archive has MD5 $got, expected $md5 (damaged or partial download; delete it and rerun)"
    echo "$name: unpacking into $dest/$folder"
    tar -xzf "$archive" -C "$dest" || die "cannot unpack $archive"
    [ "$keep" = 1 ] || rm -f "$archive"
  fi
  for spec in "$@"; do check_size "$dest/$folder/${spec%%:*}" "${spec##*:}"; done
  echo "$name: ok ($dest/$folder)"
}

if [ "$want10" = 1 ]; then
  fetch CIFAR-10 "$CIFAR10_URL" "$CIFAR10_MD5" cifar-10-batches-bin \
    data_batch_1.bin:30730000 data_batch_2.bin:30730000 data_batch_3.bin:30730000 \
    data_batch_4.bin:30730000 data_batch_5.bin:30730000 test_batch.bin:30730000
fi
if [ "$want100" = 1 ]; then
  fetch CIFAR-100 "$CIFAR100_URL" "$CIFAR100_MD5" cifar-100-binary train.bin:153700000 test.bin:30740000
fi
