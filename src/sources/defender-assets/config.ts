// The `defender_assets` config section: the Defender for Endpoint assets poller (machines, logon
// users, addresses, TVM vulnerabilities, alerts). Credentials come from `microsoft_defender_intel`.
import { z } from 'zod';

export const defenderAssetsSection = z
  .object({
    interval: z.number().int().min(1).default(300).describe('seconds between incremental runs (the seed ran every 5 minutes)'),
    inactive_days: z.number().int().min(1).max(180).default(15).describe('an Inactive machine not seen for this many days is deleted from CAR'),
    include_alerts: z.boolean().default(true).describe('import alerts as vulnerabilities of their machine (true|false)'),
    include_vulnerabilities: z.boolean().default(true).describe('import TVM vulnerabilities (true|false)'),
    include_users: z.boolean().default(true).describe('import logon users as user/account nodes (true|false)'),
    users_calls_per_run: z.number().int().min(0).max(1500).default(100).describe('per-machine logonusers calls per run; the rest wait for the next run (Defender allows 1,500/h)'),
    vulnerabilities_calls_per_run: z.number().int().min(0).max(1500).default(40).describe('per-machine vulnerabilities calls per run where the bulk TVM listing is unavailable (Defender allows 50/min)'),
    hunting: z.boolean().default(true).describe('ask advanced hunting for addresses of machines without ipAddresses (true|false)'),
    overlap: z.number().int().min(0).default(600).describe('seconds each incremental run looks back before the last run (late reports)'),
    calls_per_minute: z.number().int().min(1).max(100).default(90).describe('pace of Defender list and per-machine calls (Defender allows 100)'),
    calls_per_hour: z.number().int().min(1).max(1500).default(1400).describe('pace of each Defender endpoint per hour (Defender allows 1,500)'),
  })
  .strict()
  .prefault({});

export type DefenderAssetsConfig = z.infer<typeof defenderAssetsSection>;
