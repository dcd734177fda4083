// The `guard` config section: protected values in front of every enforcing indicator action, and
// the per-source breaker on a flood of new Blocks.
import { z } from 'zod';

const onHit = z.enum(['audit', 'skip']);
export const tlpLevel = z.string().transform((t) => t.trim().toUpperCase().replace(/^(?!TLP:)/, 'TLP:').replace(/^TLP:WHITE$/, 'TLP:CLEAR'))
  .pipe(z.enum(['TLP:CLEAR', 'TLP:GREEN', 'TLP:AMBER', 'TLP:AMBER+STRICT', 'TLP:RED']));

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
    withdrawal_breaker_percent: z.number().min(0).max(100).default(20)
      .describe('removals from a sink within an hour, as a percentage of what it has had confirmed for us (held now plus removed this hour, at least 20), above which a source\'s removals wait for `threatbridge resume` (0 = off)'),
    withdrawal_breaker_min: z.number().int().min(1).default(50)
      .describe('fewer removals than this within an hour never trip the withdrawal breaker (routine expiry and revocation)'),
    adopt_foreign: z.boolean().default(false)
      .describe('overwrite a value another application or a person already holds in Defender (never an Allowed one) (true|false)'),
    max_tlp: z.partialRecord(z.enum(['opencti', 'misp']), tlpLevel).default({})
      .describe('per source, the highest TLP that may leave, e.g. "misp=amber"; default amber+strict (TLP:RED never leaves unless set to red)'),
    breaker_poll_seconds: z.number().int().min(1).default(10).describe('seconds between checks for `threatbridge resume`'),
    decisions_retention_days: z.number().int().min(1).default(90).describe('days the decision log (`threatbridge decisions`) is kept'),
  })
  .strict()
  .prefault({});
