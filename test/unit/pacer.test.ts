// The pacer keeps calls under a per-minute quota in any sliding minute, not only per fixed window.
import { expect } from 'chai';
import { Pacer } from '../../src/net/pacer.js';

describe('Pacer', () => {
  it('spaces calls evenly under a per-minute quota, so no burst straddles two windows', async () => {
    // 6 a minute on a clock 60× fast: one call per 166 ms, a window of 1 s.
    const pacer = new Pacer({ import: { perMinute: 6 } }, 60);
    const at: number[] = [];
    for (let i = 0; i < 5; i++) {
      await pacer.take('import');
      at.push(Date.now());
    }
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    for (const gap of gaps) expect(gap, `gaps ${gaps.join(', ')}`).to.be.at.least(160);
  });

  it('lets a caller wait for the next slot without using it', async () => {
    // 1 a minute on a clock 60× fast: one call per second. A slot used by the wait would cost the
    // next take a whole second; half of one leaves room for a loaded machine's timer lag.
    const pacer = new Pacer({ import: { perMinute: 1 } }, 60);
    await pacer.take('import');
    const before = Date.now();
    await pacer.whenAvailable('import');
    expect(Date.now() - before).to.be.at.least(950);
    const taken = Date.now();
    await pacer.take('import');
    expect(Date.now() - taken, 'the slot waited for is still free').to.be.below(500);
  });

  it('holds every call during a Retry-After pause', async () => {
    const pacer = new Pacer({ list: { perHour: 1000 } });
    pacer.pauseFor(200);
    const before = Date.now();
    await pacer.take('list');
    expect(Date.now() - before).to.be.at.least(190);
  });
});
