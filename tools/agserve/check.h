/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * `agserve check`: a health suite (docs/HEALTH.md) checked through the
 * OpenAI completions API, for models that an external engine serves
 * (engine.json in the model directory, see proxy.h) and, the same way, for
 * a plain model directory that agserve serves itself on a private
 * 127.0.0.1 port.  The report and exit codes are agrun check's.
 */

/* argv[0] is "check".  Returns the exit status. */
int agserve_check_main(int argc, char **argv);
