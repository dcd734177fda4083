// The `car` config section: where IBM Security CAR lives, how we authenticate, and the source
// name (`_key`) our imports carry. Basic auth (api_key + password) or a `car-token`.
import { z } from 'zod';
import { httpUrl } from '../../config/fields.js';

export const carSection = z
  .object({
    url: httpUrl.optional().describe('CAR API base including /v2, e.g. https://cp4s.example.com/api/car/v2'),
    api_key: z.string().min(1).optional().describe('CAR API key (Basic auth user)'),
    password: z.string().min(1).optional().describe('CAR API password (Basic auth password)'),
    token: z.string().min(1).optional().describe('CAR auth token (Authorization: car-token …) instead of api_key/password'),
    source: z.string().min(1).default('Microsoft-Windows-Defender-ATP').describe('source _key the imports carry (CONNECTION_NAME)'),
    source_name: z.string().optional().describe('source display name; default the Entra tenant id'),
    batch_size: z.number().int().min(1).max(500).default(50).describe('outbox operations (machines, alerts) per CAR delivery'),
    page_size: z.number().int().min(1).max(2000).default(2000).describe('nodes or edges per POST /imports (CAR takes up to 2000)'),
    import_timeout: z.number().int().min(10).default(900).describe('seconds to wait for an import job before retrying it'),
    request_timeout: z.number().int().min(1).default(60).describe('seconds before a CAR call times out'),
    ssl_verify: z.boolean().default(true).describe('verify the CAR TLS certificate (true|false)'),
  })
  .strict()
  .prefault({});

export type CarConfig = z.infer<typeof carSection>;

export const CAR_SECRET_KEYS = ['car.api_key', 'car.password', 'car.token'];
