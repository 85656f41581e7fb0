/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * OCI image input for the dirty zone.  An "oci-archive" artifact is given as
 * an OCI image layout (directory or tar) or a `docker save` tarball; it is
 * packed as an OCI image layout so that extraction yields one that skopeo and
 * registries accept, with the original blob digests (and, for OCI input, the
 * original manifest bytes).
 */
#include "bundle/error.h"

/* True when dir holds an OCI image layout (oci-layout and index.json). */
int bn_oci_is_layout(const char *dir);

/* Prepares src for packing.  When src is already an OCI layout directory,
 * *ret_dir is a copy of src and nothing is written.  Otherwise src (a tar,
 * optionally compressed) is unpacked safely into work (an empty directory) and,
 * for `docker save` input, converted; *ret_dir then lies inside work.
 * tag (optional) overrides the ref.name recorded for a docker save image. */
int bn_oci_prepare(const char *src, const char *work, char **ret_dir, struct bn_error *err) BN_WUR;
