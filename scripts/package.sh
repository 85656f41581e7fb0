#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian packages of agkit itself (issue 17), for the host's
# release and architecture (Debian bookworm here), from one `meson install`
# of a release build:
#
#   agkit        the clean-zone tools: agimport, agctl, agrun; man pages, the
#                cycle's systemd units, cron file, docs (no libcurl, no CUDA)
#   agkit-serve  agserve and its unit (libmicrohttpd; libcurl for the
#                external-engine proxy, which is why it is its own package)
#   agkit-pack   agpack, the dirty-zone tool (libcurl)
#   agkit-sync   agsync, the site gateway's publisher and the nodes' puller
#                (libcurl: the one clean-zone tool with network code)
#   agkit-cuda   the CUDA backend plugin libagrt-cuda.so (only when the build
#                found nvcc); needs the CUDA runtime 12/13 from NVIDIA's
#                packages, which Debian does not carry
#
# Depends come from dpkg-shlibdeps on each package's ELF files.  Every
# installed file must belong to exactly one package: a file no package claims
# fails the build (a new install line needs a package).
#
# usage: scripts/package.sh OUTDIR [BUILD_DIR]    (default BUILD_DIR: build-pkg)
# Prints the .deb paths.  Needs dpkg-dev (dpkg-shlibdeps, dpkg-architecture).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: scripts/package.sh OUTDIR [BUILD_DIR]" >&2; exit 2; }
OUT=$(realpath -m "$1")
B=$(realpath -m "${2:-$ROOT/build-pkg}")
for t in dpkg-deb dpkg-shlibdeps dpkg-architecture meson ninja; do
	command -v "$t" >/dev/null || { echo "package.sh: $t not found (apt-get install dpkg-dev meson ninja-build)" >&2; exit 1; }
done
VERSION=$(sed -n "s/^ *version : '\([^']*\)'.*/\1/p" "$ROOT/meson.build" | head -1)
DEBVER="$VERSION-1"
ARCH=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
export PATH="$PATH:/usr/local/cuda/bin"

if [ -f "$B/build.ninja" ]; then
	meson configure "$B" --prefix=/usr --libdir="lib/$MA" --sysconfdir=/etc --localstatedir=/var \
		-Dbuildtype=release >/dev/null
else
	meson setup "$B" "$ROOT" --prefix=/usr --libdir="lib/$MA" --sysconfdir=/etc --localstatedir=/var \
		-Dbuildtype=release >/dev/null
fi
ninja -C "$B" >/dev/null
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/agkit-pkg.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
DESTDIR="$STAGE/all" meson install -C "$B" --no-rebuild --quiet >/dev/null
mkdir -p "$OUT"

# take PKG PATTERN...: moves the staged files matching the patterns (paths
# relative to the root, shell globs) into the package's tree
take() {
	local pkg=$1 p f; shift
	mkdir -p "$STAGE/$pkg"
	for p in "$@"; do
		for f in "$STAGE/all"/$p; do
			[ -e "$f" ] || continue
			local rel=${f#"$STAGE/all/"}
			mkdir -p "$STAGE/$pkg/$(dirname "$rel")"
			mv "$f" "$STAGE/$pkg/$rel"
		done
	done
}
take agkit usr/bin/agimport usr/bin/agctl usr/bin/agrun \
	usr/share/man/man1/agimport.1 usr/share/man/man8/agctl.8 usr/share/man/man1/agrun.1 \
	usr/lib/systemd/system/agkit-cycle.service usr/lib/systemd/system/agkit-cycle.timer \
	'usr/lib/systemd/system/agkit-alert@.service' etc/cron.d/agkit 'etc/logrotate.d/*' \
	usr/share/bash-completion/completions/agimport usr/share/bash-completion/completions/agctl \
	usr/share/bash-completion/completions/agrun 'usr/share/doc/agkit/*'
take agkit-serve usr/bin/agserve usr/share/man/man1/agserve.1 usr/lib/systemd/system/agkit-serve.service \
	usr/share/bash-completion/completions/agserve
take agkit-pack usr/bin/agpack usr/share/man/man1/agpack.1 usr/share/bash-completion/completions/agpack
take agkit-sync usr/bin/agsync usr/share/man/man1/agsync.1 usr/share/bash-completion/completions/agsync
take agkit-cuda "usr/lib/$MA/agkit/libagrt-cuda.so"
left=$(cd "$STAGE/all" && find . -type f | sed 's|^\./||')
if [ -n "$left" ]; then
	echo "package.sh: installed files no package takes (add them to a take line):" >&2
	echo "$left" | sed 's/^/  /' >&2
	exit 1
fi

# Depends of PKG's ELF files, from dpkg-shlibdeps (which wants a debian/control)
shlibdeps() {
	local pkg=$1 elfs
	elfs=$(cd "$STAGE/$pkg" && find . -type f -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print)
	[ -n "$elfs" ] || return 0
	mkdir -p "$STAGE/sd/debian"
	printf 'Source: agkit\n\nPackage: %s\nArchitecture: any\n' "$pkg" >"$STAGE/sd/debian/control"
	(cd "$STAGE/sd" && for e in $elfs; do echo "$STAGE/$pkg/${e#./}"; done |
		xargs dpkg-shlibdeps -O --ignore-missing-info -e 2>"$STAGE/sd/warn") |
		sed -n 's/^shlibs:Depends=//p'
}

# control PKG DEPENDS SECTION SUMMARY DESCRIPTION [conffile...]
build_deb() {
	local pkg=$1 deps=$2 section=$3 summary=$4 desc=$5 c; shift 5
	local d="$STAGE/$pkg"
	[ -n "$(find "$d" -type f 2>/dev/null)" ] || return 0
	mkdir -p "$d/DEBIAN"
	{
		echo "Package: $pkg"
		echo "Version: $DEBVER"
		echo "Architecture: $ARCH"
		echo "Maintainer: agkit developers <agkit@localhost>"
		echo "Installed-Size: $(du -sk --exclude=DEBIAN "$d" | cut -f1)"
		[ -n "$deps" ] && echo "Depends: $deps"
		echo "Section: $section"
		echo "Priority: optional"
		echo "Homepage: https://localhost/agkit"
		echo "Description: $summary"
		echo "$desc" | fold -s -w 76 | sed 's/^/ /; s/ *$//'
	} >"$d/DEBIAN/control"
	for c in "$@"; do
		[ -f "$d$c" ] && echo "$c" >>"$d/DEBIAN/conffiles"
	done
	(cd "$d" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum) \
		>"$d/DEBIAN/md5sums"
	if [ -f "$STAGE/$pkg.postinst" ]; then install -m 0755 "$STAGE/$pkg.postinst" "$d/DEBIAN/postinst"; fi
	dpkg-deb --build --root-owner-group -Zxz "$d" "$OUT/${pkg}_${DEBVER}_${ARCH}.deb" >/dev/null
	echo "$OUT/${pkg}_${DEBVER}_${ARCH}.deb"
}

# agserve runs as the unprivileged user of its unit (User=agkit)
cat >"$STAGE/agkit-serve.postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && ! getent passwd agkit >/dev/null; then
	adduser --system --group --home /nonexistent --no-create-home --quiet agkit
fi
POSTINST

build_deb agkit "$(shlibdeps agkit)" admin \
	"verified import, blue/green slots and health checks for air-gapped AI stacks" \
	"The clean-zone tools of agkit: agimport verifies signed bundles (trust policy, m-of-n keys, anti-rollback, every hash) and stages them into the idle one of two slots; agctl promotes after health checks and rolls back on failure; agrun runs the bundled CPU runtime (the CUDA backend is the agkit-cuda plugin). No network code." \
	/etc/cron.d/agkit /etc/logrotate.d/agkit
build_deb agkit-serve "$(shlibdeps agkit-serve), adduser" net \
	"OpenAI- and Anthropic-compatible API for the promoted agkit slot" \
	"agserve serves the model of an agkit deployment root's active slot with API keys, a hash-chained query audit and continuous batching, and follows promote and rollback. It links libcurl for the external-engine proxy (engine.json), so it is packaged apart from agkit."
build_deb agkit-pack "$(shlibdeps agkit-pack)" admin \
	"build signed, chunked bundles of AI stacks for air-gapped transfer" \
	"agpack, the dirty-zone tool of agkit: fetches OCI images, model weights and files into a signed, chunked zstd bundle with SHA-256 manifests, media-sized volumes and parity."
build_deb agkit-sync "$(shlibdeps agkit-sync), agkit (= $DEBVER), skopeo" net \
	"publish verified agkit bundles to a site mirror and pull them on every node" \
	"agsync publish verifies a bundle on the site's gateway, copies it unchanged to a static HTTP mirror and pushes its OCI images into the site registry with their digests; agsync pull fetches it on a node (resume, bounded retries) and stages it under the node's own trust policy, as agimport does. It links libcurl, so it is packaged apart from agkit."
cuda_deps=$(shlibdeps agkit-cuda)
build_deb agkit-cuda "agkit (= $DEBVER)${cuda_deps:+, $cuda_deps}" libs \
	"CUDA backend plugin for agkit's runtime" \
	"libagrt-cuda.so, loaded by agrun and agserve at run time for --device cuda|auto. Needs the NVIDIA driver and the CUDA runtime and cuBLAS libraries (NVIDIA's packages, not part of Debian); without them the tools run on the CPU."
