// The `limits` config section: how big one input may be. Each limit turns an oversized input into
// one dead letter (or, for ZeroMQ, a refused frame) with a log line, instead of memory or CPU the
// process cannot spare. Defaults sit far above real feeds and far below harm; doc/operations.md
// lists each one and what happens when it is hit.
import { z } from 'zod';

const MiB = 1024 * 1024;

export const limitsSection = z
  .object({
    sse_event_bytes: z.number().int().min(64 * 1024).default(4 * MiB)
      .describe('bytes of one OpenCTI stream event (its lines together); a bigger event is dropped unread and dead-lettered'),
    zmq_message_bytes: z.number().int().min(64 * 1024).default(16 * MiB)
      .describe('bytes of one MISP ZeroMQ message; ZeroMQ refuses a bigger one before allocating it (the REST catch-up reads that event)'),
    pattern_chars: z.number().int().min(256).default(16 * 1024)
      .describe('characters of one STIX pattern; a longer one is rejected unparsed'),
    pattern_depth: z.number().int().min(2).default(32)
      .describe('nesting depth (brackets and parentheses) of one STIX pattern; a deeper one is rejected unparsed'),
    raw_copy_bytes: z.number().int().min(1024).default(MiB)
      .describe('bytes of the raw input kept with a dead letter; the rest is cut'),
  })
  .strict()
  .prefault({});

export type Limits = z.infer<typeof limitsSection>;

/** The defaults, for code run without a config (tests, tools). */
export const DEFAULT_LIMITS: Limits = limitsSection.parse({});
