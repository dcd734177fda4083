// Dead-lettered MISP input, normalised again (after a fix or a config change) for `threatbridge replay`.
import type { Config } from '../../config/schema.js';
import type { IngestItem } from '../../core/pipeline.js';
import { isObject, readAttribute, readEvent } from './model.js';
import { attributeItem, EventCache, normaliseZmq, type MispContext } from './normalise.js';

export function replayMispInput(config: Config, payloads: unknown[]): IngestItem[] {
  const ctx: MispContext = { policy: { ...config.misp, url: config.misp.url ?? '' }, events: new EventCache(), now: () => Date.now() };
  const items: IngestItem[] = [];
  for (const raw of payloads) {
    if (isObject(raw) && typeof raw['topic'] === 'string' && typeof raw['payload'] === 'string') {
      for (const item of normaliseZmq(raw['topic'], raw['payload'], ctx).items) {
        items.push({ normalised: item.normalised, raw, event: item.event, checkpoint: null, position: `replay:${item.event}` });
      }
      continue;
    }
    // A restSearch row.
    const attr = readAttribute(raw);
    const event = isObject(raw) ? readEvent(raw['Event']) : null;
    const item = attr
      ? attributeItem(attr, event ? { ...event, published: true } : null, ctx, 'replay.rest')
      : { normalised: { sourceRef: null, changes: [], retractAll: false, alsoRetract: [], skipped: [], ignored: null,
        rejected: { code: 'malformed_attribute', detail: 'restSearch row without uuid or event_id' } }, event: 'replay.rest' };
    items.push({ normalised: item.normalised, raw, event: item.event, checkpoint: null, position: 'replay:rest' });
  }
  return items;
}
