#!/usr/bin/env bash
# Downloads one of the matrix's kernels once: Debian's own generic amd64
# image (linux-image-*-amd64, the signed build Debian hosts boot) of the
# release that ships it, unpacked under DIR/<kernel>/ (boot/vmlinuz-*,
# lib/modules/*; virtme-ng builds its initramfs from those modules).
#
#   fetch.sh KERNEL DIR       KERNEL: 5.10 (bullseye) | 6.1 (bookworm) | 6.12 (trixie)
#
# The newest such package in the release's Packages index is taken, and its
# SHA256 checked against the index. DEBIAN_MIRROR overrides the archive.
set -euo pipefail
kernel=$1 dir=$2
mirror=${DEBIAN_MIRROR:-https://deb.debian.org/debian}
case $kernel in
    5.10) suite=bullseye ;;
    6.1) suite=bookworm ;;
    6.12) suite=trixie ;;
    *) echo "fetch.sh: unknown kernel $kernel (5.10, 6.1 or 6.12)" >&2; exit 2 ;;
esac
dest=$dir/$kernel
if compgen -G "$dest/boot/vmlinuz-*" >/dev/null && [[ -e $dest/.berth-kernel ]]; then
    exit 0
fi
mkdir -p "$dir/dl"
tmp=$(mktemp -d "$dir/dl/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "fetch.sh: Linux $kernel from Debian $suite"
curl -sSfL --retry 3 -o "$tmp/Packages.xz" "$mirror/dists/$suite/main/binary-amd64/Packages.xz"
# Stanzas of linux-image-<kernel>.N...-amd64 (not -cloud, -rt, -unsigned):
# "version filename sha256", newest version last.
xz -dc "$tmp/Packages.xz" | awk -v k="$kernel" '
    /^Package: / { pkg = $2; ok = (pkg ~ ("^linux-image-" k "[.][0-9][^ ]*-amd64$")) && pkg !~ /-(cloud|rt)-amd64$/ }
    ok && /^Version: / { ver = $2 }
    ok && /^Filename: / { file = $2 }
    ok && /^SHA256: / { sha = $2 }
    /^$/ { if (ok && file != "") print ver, file, sha; ok = 0; file = "" }
    END { if (ok && file != "") print ver, file, sha }
' | sort -V -k1,1 >"$tmp/candidates"
if [[ ! -s $tmp/candidates ]]; then
    echo "fetch.sh: no linux-image-$kernel.*-amd64 in $suite's Packages index" >&2
    exit 1
fi
read -r version file sha <<<"$(tail -1 "$tmp/candidates")"
deb=$dir/dl/$(basename "$file")
if [[ ! -e $deb ]] || ! echo "$sha  $deb" | sha256sum -c --quiet - 2>/dev/null; then
    echo "fetch.sh: downloading $(basename "$file")"
    curl -sSfL --retry 3 -o "$tmp/pkg.deb" "$mirror/$file"
    echo "$sha  $tmp/pkg.deb" | sha256sum -c --quiet -
    mv "$tmp/pkg.deb" "$deb"
fi
rm -rf "$dest"
mkdir -p "$dest"
dpkg-deb -x "$deb" "$dest"
# trixie's packages are merged-/usr (usr/lib/modules); virtme-ng and depmod
# look in <root>/lib/modules.
if [[ ! -e $dest/lib && -d $dest/usr/lib ]]; then ln -s usr/lib "$dest/lib"; fi
# virtme-ng runs depmod itself when modules.dep is missing; doing it here
# keeps the cache read-only afterwards.
kver=$(basename "$(ls -d "$dest"/lib/modules/*)")
depmod -b "$dest" "$kver"
echo "$suite $version $(basename "$file")" >"$dest/.berth-kernel"
echo "fetch.sh: Linux $kver ready in $dest"
