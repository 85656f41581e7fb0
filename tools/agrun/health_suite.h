/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Health suites: golden prompts recorded from a reference model in the dirty
 * zone (`agrun record`) and checked against a staged model in the clean zone
 * (`agrun check`), teacher-forced, with tolerances that allow legitimate
 * numeric differences (CPU/GPU, bf16) but catch damaged weights, swapped
 * tokenizers and slow runtimes.  Format: docs/HEALTH.md.
 */

/* argv[0] is "record" or "check". Returns agrun's exit status. */
int agrun_health_main(int argc, char **argv);
