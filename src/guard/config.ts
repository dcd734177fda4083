// The `guard` config section: protected values in front of every enforcing indicator action, and
// the per-source breaker on a flood of new Blocks.
import { z } from 'zod';

const onHit = z.enum(['audit', 'skip']);

export const guardSection = z
  .object({
    enabled: z.boolean().default(true).describe('check enforcing actions (Block, BlockAndRemediate, Warn) against protected values (true|false)'),
    builtin: z.boolean().default(true).describe('use the built-in list of resolvers, update/certificate hosts and top sites (true|false)'),
    on_protected: onHit.default('audit').describe('what a protected value gets instead of an enforcing action: audit or skip'),
    special_addresses: onHit.default('audit')
      .describe('private, loopback, link-local and reserved IPs: audit (never Block) or skip (not pushed at all)'),
    domains: z.array(z.string().min(1)).default([]).describe('your protected domains, subdomains included (comma list)'),
    cidrs: z.array(z.string().min(1)).default([]).describe('your protected IPs and CIDR ranges, IPv4 or IPv6 (comma list)'),
    urls: z.array(z.string().min(1)).default([]).describe('your protected URLs; a path covers what is under it (comma list)'),
    hashes: z.array(z.string().min(1)).default([]).describe('MD5/SHA-1/SHA-256 of files that must never be blocked (comma list)'),
    files: z.array(z.string().min(1)).default([]).describe('paths of files whose MD5/SHA-1/SHA-256 are protected (comma list)'),
    list_file: z.string().min(1).optional()
      .describe('file of protected values, one per line (# comments); reloaded on change without restart'),
    breaker_max_blocks_per_hour: z.number().int().min(0).default(5000)
      .describe("new enforcing indicators per source per hour before that source's enforcing actions pause (0 = no breaker)"),
    breaker_poll_seconds: z.number().int().min(1).default(10).describe('seconds between checks for `threatbridge resume`'),
    decisions_retention_days: z.number().int().min(1).default(90).describe('days the decision log (`threatbridge decisions`) is kept'),
  })
  .strict()
  .prefault({});
