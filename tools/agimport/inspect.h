/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* agimport inspect DIR [--json] [--pubkey K ... [--threshold N] | --root R] [--sbom] */
int cmd_inspect(int argc, char **argv);
