/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The health report: what `agrun check MODEL --suite SUITE --json` prints on
 * stdout (tools/agrun/health_suite.c writes it) and agctl's health check
 * reads (tools/agctl/health.c).  One JSON object; this header is the only
 * place its key names are spelled.  Header only: agrun links no tool library.
 *
 *   pass          boolean  every prompt matched and the latency budgets held
 *   latency_only  boolean  false pass caused by the latency budgets alone
 *   failures      array of strings, one line per failure (first is the verdict)
 *   ttft_ms       number   best time to first token, ms (0 when not measured;
 *                          null when streaming: latency is not measured then)
 *   decode_tok_s  number   decode speed, tokens/s (null when streaming)
 *   device        string   the backend that ran the check ("cpu", "cuda")
 *   weights       {resident_bytes, mapped_bytes}
 *   memory        {mode ("mapped" or "streaming"), max_memory, batches, bytes_read (weight
 *                 bytes the check read, streaming only), largest_stage_bytes, peak_rss_bytes}
 *   prompts       array of {name, pass, tokenizer_ok, max_margin, max_kl}
 *
 * agrun exits 0 when pass is true, 1 when false; any other exit or a report
 * without a boolean pass means the check itself failed to run.  A new figure
 * is a new key here, written by agrun and read by agctl.
 */
#define HR_PASS         "pass"
#define HR_LATENCY_ONLY "latency_only"
#define HR_FAILURES     "failures"
#define HR_TTFT_MS      "ttft_ms"
#define HR_DECODE_TOK_S "decode_tok_s"
#define HR_DEVICE       "device"
#define HR_PROMPTS      "prompts"
#define HR_WEIGHTS      "weights" /* {resident_bytes, mapped_bytes}: the weights in RAM vs mapped */
#define HR_WEIGHTS_RESIDENT "resident_bytes"
#define HR_WEIGHTS_MAPPED   "mapped_bytes"
#define HR_MEMORY           "memory" /* the memory mode of the check (--max-memory) */
#define HR_MEMORY_MODE      "mode"
#define HR_MODE_MAPPED      "mapped"    /* every weight mapped at once */
#define HR_MODE_STREAMING   "streaming" /* layers streamed: latency not measured */
#define HR_MEMORY_MAX       "max_memory"     /* bytes, 0: no limit */
#define HR_MEMORY_BATCHES   "batches"        /* teacher-forced batches (each reads the weights once) */
#define HR_MEMORY_BYTES_READ "bytes_read"    /* weight bytes the teacher-forced pass read */
#define HR_MEMORY_LARGEST_STAGE "largest_stage_bytes"
#define HR_MEMORY_PEAK_RSS  "peak_rss_bytes" /* VmHWM at the end of the check */
/* keys of each object of HR_PROMPTS */
#define HR_PROMPT_NAME         "name"
#define HR_PROMPT_PASS         "pass"
#define HR_PROMPT_TOKENIZER_OK "tokenizer_ok"
#define HR_PROMPT_MAX_MARGIN   "max_margin"
#define HR_PROMPT_MAX_KL       "max_kl"
