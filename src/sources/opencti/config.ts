// The `opencti` config section (the live-stream options live in `connector`, as pycti has them).
import { z } from 'zod';
import { httpUrl, indicatorTargets } from '../../config/fields.js';

export const openctiSection = z
  .object({
    url: httpUrl.optional().describe('OpenCTI base URL, e.g. http://opencti:8080'),
    token: z.string().min(1).optional().describe('API token of the OpenCTI user the connector runs as'),
    ssl_verify: z.boolean().default(true).describe('verify OpenCTI TLS certificates (true|false)'),
    targets: indicatorTargets.describe('indicator sinks that get OpenCTI indicators (comma list of defender, sentinel)'),
  })
  .strict()
  .prefault({});

export const OPENCTI_SECRET_KEYS = ['opencti.token'];
