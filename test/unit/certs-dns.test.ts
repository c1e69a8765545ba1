import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import * as dnsPacket from 'dns-packet';
import type { DestinationStream } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCloudflareProvider, credentialKind } from '../../src/certs/dns/cloudflare.js';
import { challengeRecordName, DnsProviderError, zoneCandidates } from '../../src/certs/dns/provider.js';
import { PropagationError, parseServer, waitForTxt } from '../../src/certs/dns/propagation.js';
import { createLogger } from '../../src/log.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { startFakeCloudflare, type FakeCloudflare } from '../support/fake-cloudflare.js';

function capture(): { logger: ReturnType<typeof createLogger>; text: () => string } {
  let buf = '';
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      buf += chunk.toString();
      cb();
    },
  });
  return { logger: createLogger('trace', stream as unknown as DestinationStream), text: () => buf };
}

describe('DNS names', () => {
  it('walks up the labels for zone candidates, most specific first, never a bare TLD', () => {
    expect(zoneCandidates('_acme-challenge.a.example.co.uk.')).toEqual(['_acme-challenge.a.example.co.uk', 'a.example.co.uk', 'example.co.uk', 'co.uk']);
    expect(zoneCandidates('com')).toEqual([]);
  });

  it('puts wildcard and apex challenges on the same _acme-challenge name', () => {
    expect(challengeRecordName('*.Example.com')).toBe('_acme-challenge.example.com');
    expect(challengeRecordName('example.com')).toBe('_acme-challenge.example.com');
    expect(challengeRecordName('mqtt.example.com')).toBe('_acme-challenge.mqtt.example.com');
  });

  it('parses resolver addresses', () => {
    expect(parseServer('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(parseServer('1.1.1.1')).toEqual({ host: '1.1.1.1', port: 53 });
    expect(parseServer('[::1]:8053')).toEqual({ host: '::1', port: 8053 });
    expect(parseServer('2606:4700::1111')).toEqual({ host: '2606:4700::1111', port: 53 });
  });
});

describe('Cloudflare DNS provider (official SDK against the fake API)', () => {
  let cf: FakeCloudflare;
  beforeAll(async () => {
    cf = await startFakeCloudflare({ zones: ['example.test', 'sub.example.test', 'other.test'] });
  });
  afterAll(async () => {
    await cf?.close();
  });

  it('says which credential is missing before any request', () => {
    expect(credentialKind({ apiToken: 't' })).toBe('token');
    expect(credentialKind({ apiKey: 'k', email: 'e@x' })).toBe('key');
    expect(() => credentialKind({ apiKey: 'k' })).toThrow(/CLOUDFLARE_EMAIL/);
    expect(() => credentialKind({})).toThrow(/No Cloudflare credentials/);
  });

  for (const scheme of ['token', 'key'] as const) {
    it(`creates two TXT values on one name and removes exactly the one asked for (${scheme} auth)`, async () => {
      const { logger } = capture();
      const credentials = scheme === 'token' ? { apiToken: cf.apiToken } : { apiKey: cf.apiKey, email: cf.email };
      const before = cf.requests.length;
      const p = await createCloudflareProvider({ credentials, baseUrl: cf.baseUrl, logger });
      const a = await p.createTxt('_acme-challenge.example.test', 'value-a');
      const b = await p.createTxt('_acme-challenge.example.test', 'value-b');
      expect(a.zoneName).toBe('example.test');
      expect(cf.txtValues('_acme-challenge.example.test').sort()).toEqual(['value-a', 'value-b']);
      expect(cf.records().find((r) => r.id === a.recordId)?.ttl).toBe(120);
      await p.removeTxt(a);
      expect(cf.txtValues('_acme-challenge.example.test')).toEqual(['value-b']);
      await p.removeTxt(b);
      await p.removeTxt(b); // already gone: fine
      expect(cf.records()).toEqual([]);
      const mine = cf.requests.slice(before);
      expect(mine.every((r) => r.auth === scheme)).toBe(true);
      if (scheme === 'token') expect(mine.every((r) => r.headers['x-auth-key'] === undefined && r.headers['x-auth-email'] === undefined)).toBe(true);
      else expect(mine.every((r) => r.headers.authorization === undefined)).toBe(true);
    });
  }

  it('finds the most specific zone by walking up the labels', async () => {
    const p = await createCloudflareProvider({ credentials: { apiToken: cf.apiToken }, baseUrl: cf.baseUrl, logger: capture().logger });
    expect((await p.findZone('_acme-challenge.a.sub.example.test')).name).toBe('sub.example.test');
    expect((await p.findZone('_acme-challenge.mqtt.example.test')).name).toBe('example.test');
    const zone = await p.findZone('_acme-challenge.example.test');
    expect(zone.nameServers).toEqual(['ns1.example.test', 'ns2.example.test']);
  });

  it('says clearly when no zone holds the name', async () => {
    const p = await createCloudflareProvider({ credentials: { apiToken: cf.apiToken }, baseUrl: cf.baseUrl, logger: capture().logger });
    const err = await p.createTxt('_acme-challenge.nowhere.example', 'v').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DnsProviderError);
    expect((err as DnsProviderError).kind).toBe('zone-not-found');
    expect((err as Error).message).toMatch(/No Cloudflare zone holds _acme-challenge\.nowhere\.example \(looked for .*nowhere\.example\)/);
  });

  it('adopts an identical record (code 81058) instead of failing, and removes it later', async () => {
    const existing = cf.addRecord('example.test', 'TXT', '_acme-challenge.example.test', 'same-value');
    const p = await createCloudflareProvider({ credentials: { apiToken: cf.apiToken }, baseUrl: cf.baseUrl, logger: capture().logger });
    const h = await p.createTxt('_acme-challenge.example.test', 'same-value');
    expect(cf.requests.some((r) => r.method === 'POST' && r.status === 400)).toBe(true);
    expect(h.recordId).toBe(existing.id);
    await p.removeTxt(h);
    expect(cf.records()).toEqual([]);
  });

  it('rejected credentials: the error names the credential kind and never contains the secret', async () => {
    const badToken = 'WRONGtoken0123456789WRONGtoken0123456789';
    const { logger, text } = capture();
    const p1 = await createCloudflareProvider({ credentials: { apiToken: badToken }, baseUrl: cf.baseUrl, logger });
    const e1 = (await p1.createTxt('_acme-challenge.example.test', 'v').catch((e: unknown) => e)) as DnsProviderError;
    expect(e1.kind).toBe('auth');
    expect(e1.message).toMatch(/^Cloudflare rejected the API token while looking up the zone of _acme-challenge\.example\.test \(HTTP 403, code 10000: Authentication error\)\. Check CLOUDFLARE_API_TOKEN/);
    expect(e1.message).not.toContain(badToken);

    const badKey = '0000000000000000000000000000000000000';
    const p2 = await createCloudflareProvider({ credentials: { apiKey: badKey, email: cf.email }, baseUrl: cf.baseUrl, logger });
    const e2 = (await p2.createTxt('_acme-challenge.example.test', 'v').catch((e: unknown) => e)) as DnsProviderError;
    expect(e2.message).toMatch(/^Cloudflare rejected the global API key and e-mail .*code 9103: Unknown X-Auth-Key or X-Auth-Email.*CLOUDFLARE_KEY/);
    const p3 = await createCloudflareProvider({ credentials: { apiKey: 'not-a-key', email: cf.email }, baseUrl: cf.baseUrl, logger });
    const e3 = (await p3.createTxt('_acme-challenge.example.test', 'v').catch((e: unknown) => e)) as DnsProviderError;
    expect(e3.message).toMatch(/rejected the global API key and e-mail .*HTTP 400.*6103: Invalid format for X-Auth-Key header/);
    expect(`${e2.message}${e3.message}${text()}`).not.toContain(badKey);
    expect(text()).not.toContain(badToken);
    expect(text()).not.toContain('not-a-key');
  });

  it('the SDK retries 5xx and 429 by itself; past its retries the error says what failed', async () => {
    const { logger, text } = capture();
    const p = await createCloudflareProvider({ credentials: { apiToken: cf.apiToken }, baseUrl: cf.baseUrl, logger, maxRetries: 2 });
    await p.findZone('example.test'); // cache the zone: the faults below hit record creation
    cf.injectFault({ status: 503 }, 1);
    cf.injectFault({ status: 429, retryAfter: '0' }, 1);
    const h = await p.createTxt('_acme-challenge.example.test', 'after-retries');
    expect(text()).toMatch(/retrying, 2 attempts remaining/);
    await p.removeTxt(h);

    cf.injectFault({ status: 502 }, 3);
    const e = (await p.createTxt('_acme-challenge.example.test', 'v').catch((x: unknown) => x)) as DnsProviderError;
    expect(e.kind).toBe('server');
    expect(e.message).toMatch(/^Cloudflare API failed while creating the TXT record _acme-challenge\.example\.test \(HTTP 502, code 10001: Internal server error\) after 2 retries/);
    expect(cf.records()).toEqual([]);
  });

  it('a request that never answers times out (the SDK retries it) with a clear error', async () => {
    const p = await createCloudflareProvider({ credentials: { apiToken: cf.apiToken }, baseUrl: cf.baseUrl, logger: capture().logger, maxRetries: 1, timeoutMs: 200 });
    cf.injectFault('hang', 2);
    const e = (await p.findZone('_acme-challenge.other.test').catch((x: unknown) => x)) as DnsProviderError;
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(/did not answer while looking up the zone of _acme-challenge\.other\.test \(timed out, after 1 retries\)/);
  });

  it('the fake paginates like Cloudflare and the SDK follows the pages', async () => {
    for (let i = 0; i < 230; i += 1) cf.addRecord('other.test', 'TXT', `r${i}.other.test`, `v${i}`);
    const { default: Cloudflare } = await import('cloudflare');
    const client = new Cloudflare({ apiToken: cf.apiToken, apiKey: null, apiEmail: null, baseURL: cf.baseUrl });
    const zone = cf.zones.find((z) => z.name === 'other.test')!;
    const seen: string[] = [];
    for await (const r of client.dns.records.list({ zone_id: zone.id, type: 'TXT', per_page: 100 })) seen.push(r.id);
    expect(seen).toHaveLength(230);
    const pages = cf.requests.filter((r) => r.path.endsWith('/dns_records') && r.method === 'GET').map((r) => r.query.page ?? '1');
    expect(pages.slice(-4)).toEqual(['1', '2', '3', '4']);
  });
});

describe('DNS propagation check', () => {
  let cf: FakeCloudflare;
  let dns: DnsServer;
  beforeAll(async () => {
    cf = await startFakeCloudflare();
    dns = await startDnsServer({
      txt: (n) => cf.txtValues(n),
      records: [
        { name: 'example.test', type: 'NS', data: 'ns1.example.test' },
        { name: 'ns1.example.test', type: 'A', data: '127.0.0.1' },
      ],
    });
  });
  afterAll(async () => {
    await Promise.all([dns?.close(), cf?.close()]);
  });

  it('resolves once every value is visible on every configured resolver', async () => {
    const { logger, text } = capture();
    const a = cf.addRecord('example.test', 'TXT', '_acme-challenge.example.test', 'one');
    setTimeout(() => cf.addRecord('example.test', 'TXT', '_acme-challenge.example.test', 'two'), 150);
    await waitForTxt([{ name: '_acme-challenge.example.test', values: ['one', 'two'] }], { resolvers: [dns.address, dns.address], intervalMs: 30, timeoutMs: 5000, logger });
    expect(text()).toMatch(/TXT records visible on every server/);
    expect(dns.queries.filter((q) => q.type === 'TXT').length).toBeGreaterThan(2);
    void a;
  });

  it('uses the zone\u2019s authoritative name servers when no resolver is configured', async () => {
    const { logger } = capture();
    const before = dns.queries.length;
    await waitForTxt([{ name: '_acme-challenge.example.test', values: ['one'] }], {
      resolvers: [],
      zone: { name: 'example.test', nameServers: [] },
      bootstrapResolvers: [dns.address],
      authoritativePort: dns.port,
      intervalMs: 30,
      timeoutMs: 5000,
      logger,
    });
    expect(dns.queries.slice(before).map((q) => q.type)).toEqual(expect.arrayContaining(['NS', 'A', 'TXT']));
  });

  it('gives up after the bounded wait with an error naming what is missing where', async () => {
    const { logger, text } = capture();
    dns.setServing(false);
    try {
      const err = await waitForTxt([{ name: '_acme-challenge.example.test', values: ['one'] }], { resolvers: [dns.address], intervalMs: 50, timeoutMs: 400, progressEveryMs: 100, logger }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PropagationError);
      expect((err as Error).message).toMatch(new RegExp(`^DNS propagation timed out after \\d+ s \\(\\d+ checks\\): _acme-challenge\\.example\\.test on ${dns.address.replace(/\./g, '\\.')}: 1 of 1 value\\(s\\) missing`));
      expect(text()).toMatch(/still waiting for TXT records to propagate/);
    } finally {
      dns.setServing(true);
    }
  });
});

describe('loopback DNS server (test harness)', () => {
  let cf: FakeCloudflare;
  let dns: DnsServer;
  beforeAll(async () => {
    cf = await startFakeCloudflare();
    cf.addRecord('example.test', 'TXT', '_acme-challenge.example.test', 'tok-1');
    dns = await startDnsServer({ txt: (n) => cf.txtValues(n) });
  });
  afterAll(async () => {
    await Promise.all([dns?.close(), cf?.close()]);
  });

  const rcode = (p: dnsPacket.DecodedPacket): string => (['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN'][(p.flags ?? 0) & 0xf] ?? 'OTHER');

  async function ask(name: string, type: 'TXT' | 'CNAME' | 'A', transport: 'udp' | 'tcp'): Promise<dnsPacket.DecodedPacket> {
    const query = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
    if (transport === 'udp') {
      const sock = createSocket('udp4');
      try {
        return await new Promise((res) => {
          sock.once('message', (m) => res(dnsPacket.decode(m)));
          sock.send(query, dns.port, '127.0.0.1');
        });
      } finally {
        sock.close();
      }
    }
    return new Promise((res, rej) => {
      const s = connect(dns.port, '127.0.0.1', () => s.write(dnsPacket.streamEncode(dnsPacket.decode(query))));
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          res(dnsPacket.streamDecode(buf) as dnsPacket.DecodedPacket);
          s.destroy();
        }
      });
      s.on('error', rej);
    });
  }

  for (const transport of ['udp', 'tcp'] as const) {
    it(`answers authoritatively over ${transport}: TXT values, NXDOMAIN for unknown names, NODATA for other types`, async () => {
      const txt = await ask('_acme-challenge.Example.TEST', 'TXT', transport);
      expect(txt.id).toBe(4242);
      expect(txt.flag_aa).toBe(true);
      expect(rcode(txt)).toBe('NOERROR');
      expect(txt.questions).toEqual([{ name: '_acme-challenge.Example.TEST', type: 'TXT', class: 'IN' }]);
      expect(txt.answers?.map((a) => (a.type === 'TXT' ? Buffer.concat(a.data as Buffer[]).toString() : ''))).toEqual(['tok-1']);
      const cname = await ask('_acme-challenge.example.test', 'CNAME', transport);
      expect(rcode(cname)).toBe('NOERROR');
      expect(cname.answers).toEqual([]);
      const unknown = await ask('nothing.example.test', 'TXT', transport);
      expect(rcode(unknown)).toBe('NXDOMAIN');
      expect(unknown.flag_aa).toBe(true);
    });
  }

  it('stops serving records when told to (a zone that never propagates)', async () => {
    dns.setServing(false);
    try {
      expect(rcode(await ask('_acme-challenge.example.test', 'TXT', 'udp'))).toBe('NXDOMAIN');
    } finally {
      dns.setServing(true);
    }
    expect((await ask('_acme-challenge.example.test', 'TXT', 'udp')).answers).toHaveLength(1);
  });
});
