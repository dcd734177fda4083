// The `iris` config section: where DFIR-IRIS is and how Defender alerts become IRIS alerts.
// Reference values (customer, statuses, TLP) are given by name or id; names are looked up in
// IRIS at start because the ids differ between installs.
import { z } from 'zod';
import { httpUrl } from '../../config/fields.js';

const nameOrId = z.union([z.number().int().positive(), z.string().trim().min(1)]).transform((v) => String(v));

export const irisSection = z
  .object({
    url: httpUrl.optional().describe('DFIR-IRIS base URL, e.g. https://iris.example.org'),
    api_key: z.string().min(1).optional().describe('API key of the IRIS user ThreatBridge acts as (alerts_read, alerts_write)'),
    verify_cert: z.boolean().default(true).describe('verify the IRIS TLS certificate (true|false)'),
    customer_id: nameOrId.optional().describe('IRIS customer (id or name) the alerts belong to'),
    find_customer: z
      .boolean()
      .default(false)
      .describe('when the key may not use customer_id, use the first customer it may use (true|false); off = stop with an error'),
    tenant_customers: z
      .record(z.string().min(1), nameOrId)
      .default({})
      .describe('per Defender tenant id, its IRIS customer (id or name), e.g. "tenant1=2,tenant2=Contoso"'),
    alert_status_id: nameOrId.default('New').describe('IRIS status (name or id) of newly created alerts'),
    resolved_status_id: nameOrId.default('Closed').describe('IRIS status (name or id) set when the Defender alert is resolved'),
    case_id: z.number().int().positive().optional().describe('optional: merge every new alert into this IRIS case'),
    alert_source: z.string().min(1).default('Microsoft Defender').describe('alert_source of the IRIS alerts (also the dedup scope)'),
    ioc_tlp: nameOrId.default('amber').describe('TLP (name or id) of the IOCs attached to alerts'),
    request_timeout: z.number().int().min(1).default(30).describe('seconds before an IRIS call times out'),
  })
  .strict()
  .prefault({});

export type IrisConfig = z.infer<typeof irisSection>;
export const IRIS_SECRET_KEYS = ['iris.api_key'];
