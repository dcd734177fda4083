// The `sightings` config section: Defender custom-indicator hits written back to the platforms
// that asserted the indicator (doc/sightings.md). Off until switched on per platform.
import { z } from 'zod';

export const sightingsSection = z
  .object({
    opencti_enabled: z.boolean().default(false)
      .describe('write a STIX sighting in OpenCTI when a Defender CustomTI alert fires on an indicator from OpenCTI (true|false; needs opencti.url, opencti.token and the Defender alerts credentials)'),
    misp_enabled: z.boolean().default(false)
      .describe('add a MISP sighting on the attribute when a Defender CustomTI alert fires on it (true|false; needs misp.url and misp.key)'),
    identity_name: z.string().min(1).max(200).default('Microsoft Defender for Endpoint')
      .describe('OpenCTI: name of the identity (one per tenant, "<name> (<tenant id>)") where sightings happen'),
    misp_source: z.string().min(1).max(120).default('Microsoft Defender (ThreatBridge)')
      .describe('MISP: the sighting\'s source, followed by " alert <Defender alert id>"'),
    request_timeout: z.number().int().min(1).max(300).default(30).describe('seconds before a call to OpenCTI or MISP for sightings times out'),
  })
  .strict()
  .prefault({});

export type SightingsConfig = z.infer<typeof sightingsSection>;
