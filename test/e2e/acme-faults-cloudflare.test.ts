/**
 * Cloudflare failing during a renewal: the current certificate stays served and stored, a retry is scheduled with
 * backoff, no TXT record is left behind, and the error says what went wrong (never with a secret in it).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { IssuedEvent } from '../../src/certs/manager.js';
import { CertificateStore } from '../../src/certs/lineage-store.js';
import { lineageNameFor } from '../../src/x509/dns-name.js';
import { failFirstRenewal, nextEvent, startAcmeTestbed, type AcmeTestbed, type FailedRenewal } from '../support/pebble.js';

describe('renewal with Cloudflare failing', () => {
  let bed: AcmeTestbed;
  const secrets: string[] = [];
  beforeAll(async () => {
    bed = await startAcmeTestbed();
    secrets.push(bed.cloudflare.apiToken, bed.cloudflare.apiKey);
  });
  afterEach(async () => {
    await bed?.reset();
  });
  afterAll(async () => {
    await bed?.close();
  });

  async function expectKeptAndClean(r: FailedRenewal): Promise<void> {
    expect(r.manager.current()?.serial).toBe(r.made.serial);
    expect(r.manager.hasCaCertificate).toBe(true);
    const name = lineageNameFor(r.manager.current()?.names ?? []);
    expect((await new CertificateStore(r.dir).read(name))?.serial).toBe(r.made.serial);
    expect(bed.cloudflare.records()).toEqual([]);
    expect(r.failure.failures).toBe(1);
    // backoffBaseMs 300 +/- 20 % (the test bed's policy; production starts at 5 min).
    expect(r.retry.inMs).toBeGreaterThanOrEqual(240);
    expect(r.retry.inMs).toBeLessThanOrEqual(360);
    expect(r.manager.stats()).toMatchObject({ renewalsFailed: 1, consecutiveFailures: 1, lastError: r.failure.error.message, hasCaCertificate: true });
  }

  it('5xx: the SDK retries, then our backoff retries and renews', async () => {
    const from = bed.cloudflare.requests.length;
    const r = await failFirstRenewal(bed, { inject: () => bed.cloudflare.injectFault({ status: 502 }, 3) });
    expect(r.failure.error.message).toMatch(/^Cloudflare API failed while looking up the zone of _acme-challenge\.example\.test \(HTTP 502, code 10001: Internal server error\) after 2 retries; will try again later\.$/);
    const attempts = bed.cloudflare.requests.slice(from, from + 3);
    expect(attempts.map((q) => `${q.method} ${q.path} ${q.status}`)).toEqual(Array(3).fill('GET /client/v4/zones 502'));
    await expectKeptAndClean(r);
    const renewed = await nextEvent<IssuedEvent>(r.manager, 'issued');
    await r.manager.stop();
    expect(renewed.serial).not.toBe(r.made.serial);
    expect(r.manager.current()?.serial).toBe(renewed.serial);
    expect(r.manager.stats()).toMatchObject({ renewalsSucceeded: 1, renewalsFailed: 1, consecutiveFailures: 0, lastError: undefined });
    expect(bed.cloudflare.records()).toEqual([]);
  });

  it('429: rate limited past the SDK retries (honouring Retry-After), then our retry is scheduled', async () => {
    const from = bed.cloudflare.requests.length;
    const r = await failFirstRenewal(bed, { inject: () => bed.cloudflare.injectFault({ status: 429, retryAfter: '0' }, 3) });
    await r.manager.stop();
    expect(r.failure.error.message).toMatch(/^Cloudflare rate-limited looking up the zone of _acme-challenge\.example\.test \(HTTP 429, code 10000: Rate limited.*\) after 2 retries; will try again later\.$/);
    expect(bed.cloudflare.requests.slice(from, from + 3).map((q) => q.status)).toEqual([429, 429, 429]);
    await expectKeptAndClean(r);
  });

  it('timeouts: requests that never answer are abandoned (SDK timeout + retries), then our retry renews', async () => {
    const r = await failFirstRenewal(bed, { inject: () => bed.cloudflare.injectFault('hang', 3), options: { cloudflare: { maxRetries: 2, timeoutMs: 300 } } });
    expect(r.failure.error.message).toMatch(/^Cloudflare API at http:\/\/127\.0\.0\.1:\d+\/client\/v4 did not answer while looking up the zone of _acme-challenge\.example\.test \(timed out, after 2 retries\)\.$/);
    await expectKeptAndClean(r);
    await nextEvent<IssuedEvent>(r.manager, 'issued');
    await r.manager.stop();
  });

  it('a wrong API token: the error names the credential, retries back off exponentially, the token is in no log line', async () => {
    const wrong = 'WRONGtokenWRONGtokenWRONGtokenWRONGtoken';
    secrets.push(wrong);
    const r = await failFirstRenewal(bed, { config: { cloudflare: { apiToken: wrong } } });
    expect(r.failure.error.message).toMatch(/^Cloudflare rejected the API token while looking up the zone of _acme-challenge\.example\.test \(HTTP 403, code 10000: Authentication error\)\. Check CLOUDFLARE_API_TOKEN/);
    await expectKeptAndClean(r);
    const [second, retry2] = await Promise.all([nextEvent<{ failures: number }>(r.manager, 'issue-failed'), nextEvent<{ inMs: number; reason: string }>(r.manager, 'scheduled')]);
    await r.manager.stop();
    expect(second.failures).toBe(2);
    expect(retry2.inMs).toBeGreaterThanOrEqual(480);
    expect(retry2.inMs).toBeLessThanOrEqual(720);
  });

  it('a wrong global API key: the error names the key and e-mail, and the key is in no log line', async () => {
    const wrongKey = 'ffffffffffffffffffffffffffffffffffff0';
    secrets.push(wrongKey);
    const r = await failFirstRenewal(bed, { config: { cloudflare: { apiKey: wrongKey, email: bed.cloudflare.email } } });
    await r.manager.stop();
    expect(r.failure.error.message).toMatch(/^Cloudflare rejected the global API key and e-mail .*\(HTTP 403, code 9103: Unknown X-Auth-Key or X-Auth-Email\)\. Check CLOUDFLARE_EMAIL and CLOUDFLARE_KEY/);
    await expectKeptAndClean(r);
  });

  it('no zone for the domain: a clear error, nothing created', async () => {
    const posts = bed.cloudflare.requests.filter((q) => q.method === 'POST').length;
    const r = await failFirstRenewal(bed, { config: { domains: ['*.nozone.test', 'nozone.test'] } });
    await r.manager.stop();
    expect(r.failure.error.message).toMatch(/^No Cloudflare zone holds _acme-challenge\.nozone\.test \(looked for _acme-challenge\.nozone\.test, nozone\.test\)\. Check DOMAIN/);
    await expectKeptAndClean(r);
    expect(bed.cloudflare.requests.filter((q) => q.method === 'POST').length).toBe(posts);
  });

  it('no secret appears anywhere in the captured logs (broker and issuing children, at trace level)', () => {
    const text = bed.logs.text();
    expect(text.length).toBeGreaterThan(1000);
    for (const s of secrets) expect(text).not.toContain(s);
  });
});
