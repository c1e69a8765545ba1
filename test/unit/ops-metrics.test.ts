import { describe, expect, it } from 'vitest';
import {
  AUTHORIZATION_ACTIONS,
  BrokerMetrics,
  TLS_VERSIONS,
  REFUSAL_REASONS,
  RENEWAL_RESULTS,
  type RefusalReason,
} from '../../src/ops/metrics.js';
import { RELOAD_KINDS, type ReloadKind } from '../../src/ops/observer.js';
import { CERTIFICATE_ORIGINS } from '../../src/tls/source.js';
import { TLS_FAILURE_REASONS as TLS_FAILURES, type TlsFailureReason as TlsFailure } from '../../src/tls/handshake-failures.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format 0.0.4, as far as prom-client writes it. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function scrape(metrics: BrokerMetrics): Promise<{ samples: Sample[]; types: Map<string, string> }> {
  return parse((await metrics.scrape()).body);
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

const P = 'mqtt_acme_broker_';

describe('BrokerMetrics', () => {
  it('counts accepted connections per listener and tracks connected clients both ways', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    m.listenerStarted('mqtt:1883');
    m.clientConnected('mqtts:8883');
    m.clientConnected('mqtts:8883');
    m.clientConnected(9001);
    m.clientDisconnected();
    const { samples } = await scrape(m);
    expect(value(samples, `${P}connections_accepted_total`, { listener: 'mqtts:8883' })).toBe(2);
    expect(value(samples, `${P}connections_accepted_total`, { listener: '9001' })).toBe(1);
    expect(value(samples, `${P}connections_accepted_total`, { listener: 'mqtt:1883' })).toBe(0);
    expect(value(samples, `${P}connected_clients`)).toBe(2);
  });

  it('counts a listener name that is not a listener under other, not as a new series', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    m.clientConnected('mqtts:8883');
    m.clientConnected('client-17@10.0.0.4');
    m.clientConnected(-1);
    m.clientConnected(1.5);
    const { samples } = await scrape(m);
    expect(samples.filter((s) => s.name === `${P}connections_accepted_total`).map((s) => s.labels)).toEqual([
      { listener: 'mqtts:8883' },
      { listener: 'other' },
    ]);
    expect(value(samples, `${P}connections_accepted_total`, { listener: 'other' })).toBe(3);
  });

  it('never lets connected clients go below zero on an unmatched disconnect', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    m.clientDisconnected();
    m.clientConnected(8883);
    expect(value((await scrape(m)).samples, `${P}connected_clients`)).toBe(1);
  });

  it('exports every refusal reason from the start and counts an unknown reason as other', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    let samples = (await scrape(m)).samples;
    for (const reason of REFUSAL_REASONS) {
      expect(value(samples, `${P}connections_refused_total`, { reason })).toBe(0);
    }
    m.connectionRefused('bad_credentials');
    m.connectionRefused('bad_credentials');
    m.connectionRefused('tls_error');
    m.connectionRefused('some client-supplied text' as RefusalReason);
    samples = (await scrape(m)).samples;
    expect(value(samples, `${P}connections_refused_total`, { reason: 'bad_credentials' })).toBe(2);
    expect(value(samples, `${P}connections_refused_total`, { reason: 'tls_error' })).toBe(1);
    expect(value(samples, `${P}connections_refused_total`, { reason: 'other' })).toBe(1);
    expect(samples.filter((s) => s.name === `${P}connections_refused_total`)).toHaveLength(REFUSAL_REASONS.length);
  });

  it('counts messages and payload bytes in both directions', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    m.messageIn(10);
    m.messageIn(0);
    m.messageOut(10);
    m.messageOut(10);
    m.messageOut(5);
    const { samples } = await scrape(m);
    expect(value(samples, `${P}messages_received_total`)).toBe(2);
    expect(value(samples, `${P}received_payload_bytes_total`)).toBe(10);
    expect(value(samples, `${P}messages_sent_total`)).toBe(3);
    expect(value(samples, `${P}sent_payload_bytes_total`)).toBe(25);
  });

  it('counts authentication failures and authorization denials by action', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    m.authFailed();
    m.subscribeDenied();
    m.subscribeDenied();
    m.publishDenied();
    const { samples } = await scrape(m);
    expect(value(samples, `${P}authentication_failures_total`)).toBe(1);
    expect(value(samples, `${P}authorization_denials_total`, { action: 'subscribe' })).toBe(2);
    expect(value(samples, `${P}authorization_denials_total`, { action: 'publish' })).toBe(1);
  });

  it('reads retained messages and subscriptions from the broker at each scrape, async or not', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    let retained = 3;
    m.observeRetainedMessages(async () => retained);
    m.observeSubscriptions(() => 7);
    let samples = (await scrape(m)).samples;
    expect(value(samples, `${P}retained_messages`)).toBe(3);
    expect(value(samples, `${P}subscriptions`)).toBe(7);
    retained = 4;
    samples = (await scrape(m)).samples;
    expect(value(samples, `${P}retained_messages`)).toBe(4);
  });

  it('reports NaN for a count that fails to be read and still renders every other metric', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    m.observeRetainedMessages(() => Promise.reject(new Error('persistence closed')));
    m.messageIn(1);
    const { samples } = await scrape(m);
    expect(value(samples, `${P}retained_messages`)).toBeNaN();
    expect(value(samples, `${P}messages_received_total`)).toBe(1);
  });

  it('records certificate expiry per lineage, renewals by result and reloads by kind', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    m.certificateServed('example.com', new Date('2030-01-02T03:04:05Z'));
    m.renewalSucceeded();
    m.renewalFailed();
    m.renewalFailed();
    m.reloaded('passwd', new Date('2025-06-01T00:00:00Z'));
    m.reloaded('certificate', new Date('2025-06-02T00:00:00Z'));
    m.reloadFailed('acl');
    const { samples } = await scrape(m);
    expect(value(samples, `${P}certificate_not_after_timestamp_seconds`, { lineage: 'example.com' })).toBe(
      Date.UTC(2030, 0, 2, 3, 4, 5) / 1000,
    );
    expect(value(samples, `${P}certificate_renewals_total`, { result: 'success' })).toBe(1);
    expect(value(samples, `${P}certificate_renewals_total`, { result: 'failure' })).toBe(2);
    expect(value(samples, `${P}last_reload_timestamp_seconds`, { what: 'passwd' })).toBe(
      Date.UTC(2025, 5, 1) / 1000,
    );
    expect(value(samples, `${P}last_reload_timestamp_seconds`, { what: 'certificate' })).toBe(
      Date.UTC(2025, 5, 2) / 1000,
    );
    // No reload of acl happened yet: no timestamp is invented for it.
    expect(value(samples, `${P}last_reload_timestamp_seconds`, { what: 'acl' })).toBeUndefined();
    expect(value(samples, `${P}reload_failures_total`, { what: 'acl' })).toBe(1);
  });

  it('refuses a lineage label that is not a DNS name', () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    expect(() => m.certificateServed('user "bob" / topic', new Date())).toThrow(/not a DNS name/);
    expect(() => m.certificateServed('', new Date())).toThrow(/not a DNS name/);
    expect(() => m.certificateServed('*.example.com', new Date())).not.toThrow();
  });

  it('emits only label names and values from the fixed sets, whatever the broker passes', async () => {
    const m = new BrokerMetrics({ defaultMetrics: false });
    m.clientConnected('mqtts:8883');
    m.clientConnected('alice');
    for (const reason of REFUSAL_REASONS) m.connectionRefused(reason);
    m.connectionRefused('alice' as RefusalReason);
    m.publishDenied();
    m.subscribeDenied();
    m.tlsHandshake('mqtts:8883', 'TLSv1.3');
    m.tlsHandshake('mqtts:8883', 'SSLv3-or-whatever');
    m.tlsHandshake('10.0.0.4:51234', 'TLSv1');
    m.tlsError('mqtts:8883', 'unknown_ca');
    m.tlsError('mqtts:8883', 'tlsv1 alert unknown ca from 10.0.0.4' as TlsFailure);
    for (const what of RELOAD_KINDS) {
      m.reloaded(what);
      m.reloadFailed(what);
    }
    m.reloaded('client-42' as ReloadKind);
    m.reloadFailed('client-42' as ReloadKind);
    m.renewalSucceeded();
    m.certificateServed('example.com', new Date());

    const allowed: Record<string, (v: string) => boolean> = {
      listener: (v) => v === 'mqtts:8883' || v === 'other',
      reason: (v) => (REFUSAL_REASONS as readonly string[]).includes(v) || (TLS_FAILURES as readonly string[]).includes(v),
      action: (v) => (AUTHORIZATION_ACTIONS as readonly string[]).includes(v),
      what: (v) => (RELOAD_KINDS as readonly string[]).includes(v),
      result: (v) => (RENEWAL_RESULTS as readonly string[]).includes(v),
      lineage: (v) => v === 'example.com',
      version: (v) => (TLS_VERSIONS as readonly string[]).includes(v),
      origin: (v) => (CERTIFICATE_ORIGINS as readonly string[]).includes(v),
    };
    const { samples } = await scrape(m);
    expect(samples.length).toBeGreaterThan(20);
    for (const s of samples) {
      for (const [label, v] of Object.entries(s.labels)) {
        expect(Object.keys(allowed), `${s.name} has label ${label}`).toContain(label);
        expect(allowed[label]!(v), `${s.name}{${label}="${v}"}`).toBe(true);
      }
    }
  });

  it('follows Prometheus naming: one prefix, _total on counters only, units in the name', async () => {
    const own = (await scrape(new BrokerMetrics({ defaultMetrics: false }))).types;
    expect(own.size).toBe(18);
    for (const [name, type] of own) {
      expect(name.startsWith(P), name).toBe(true);
      expect(name.endsWith('_total'), `${name} is a ${type}`).toBe(type === 'counter');
      if (/bytes/.test(name)) expect(name, name).toMatch(/_bytes(_total)?$/);
      if (/timestamp|time|expir|after/.test(name)) expect(name, name).toMatch(/_seconds$/);
    }
    // Node's process metrics keep their standard names, which existing dashboards look for.
    const all = (await scrape(new BrokerMetrics())).types;
    expect(all.size).toBeGreaterThan(own.size + 10);
    for (const name of all.keys()) expect(name.startsWith(P) || name.startsWith('process_') || name.startsWith('nodejs_'), name).toBe(true);
    expect(all.get('process_cpu_seconds_total')).toBe('counter');
    expect(all.get('process_resident_memory_bytes')).toBe('gauge');
    expect(all.get('nodejs_heap_size_total_bytes')).toBe('gauge');
    expect(all.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect([...all.keys()].filter((n) => n.startsWith(`${P}process_`) || n.startsWith(`${P}nodejs_`))).toEqual([]);
  });

  it('keeps each instance in its own registry', async () => {
    const a = new BrokerMetrics();
    const b = new BrokerMetrics();
    a.messageIn(100);
    expect(value((await scrape(a)).samples, `${P}messages_received_total`)).toBe(1);
    expect(value((await scrape(b)).samples, `${P}messages_received_total`)).toBe(0);
    expect(await a.registry()).not.toBe(await b.registry());
  });
});
