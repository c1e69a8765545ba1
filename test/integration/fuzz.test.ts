/**
 * Fuzzing the broker over its listeners: malformed and mutated packets of every type and every protocol
 * version (3.1 = MQIsdp, 3.1.1, 5), each case on its own fresh connection, while two bystanders (mqtt.js,
 * MQTT 5 over TLS and MQTT 3.1.1 over plain TCP) keep publishing to each other on the same broker.
 *
 * After every case: the bystanders still get their messages, the broker logged nothing at error level (and
 * nothing "uncaught"), the process saw no uncaught exception, the connection closed (by the broker, or
 * after our FIN), and what the broker sent parses as MQTT. Hand-made cases with a known correct outcome
 * (FACTS.md's defects of v0.1 among them) assert that outcome exactly: closed, for MQTT 5 a DISCONNECT with
 * a reason code >= 0x80 first, no PUBACK for the invalid PUBLISH, CONNACK 0x01 for `MQTT` with level 3.
 * At the end the heap (after a forced GC) must be back near where it was after the first batch: a leak
 * check, not a timing check.
 *
 * Deterministic: FUZZ_SEED (default below) and FUZZ_CASES (default 2000) choose the random cases; case i is
 * the same whatever ran before it. FUZZ_LANES (default 4) connections run at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { MqttClient } from 'mqtt';
import { startTestBroker, USERS, type TestBroker } from '../support/broker.js';
import { connectMqtt, type ConnectOptions } from '../support/clients.js';
import {
  checkOutcome,
  describeOutcome,
  randomCase,
  rawPublish,
  runCase,
  Rng,
  targetedCases,
  validConnect,
  VERSIONS,
  type Endpoint,
  type FuzzCase,
  type Outcome,
  type Version,
} from '../support/fuzz-packets.js';

const CASES = Math.max(0, Number(process.env.FUZZ_CASES ?? 2000));
const SEED = Number(process.env.FUZZ_SEED ?? 20261207);
const LANES = Math.max(1, Number(process.env.FUZZ_LANES ?? 4));
/** Allowed heap growth (after a forced GC) from the end of the first batch to the end of the run. */
const HEAP_LIMIT_MIB = Number(process.env.FUZZ_HEAP_LIMIT_MIB ?? 16);

// ---------------------------------------------------------------------------------------------------------
// The broker under test and what we watch on it.

interface BrokerStats {
  connected: number;
  sessions: number;
  subscriptions: number;
  retained: number;
}

interface Target {
  endpoint: Endpoint;
  bystander: Record<'v5' | 'v4', ConnectOptions>;
  /** Error-level or "uncaught" log lines since the last call (and forget the rest, to keep memory flat). */
  drainErrorLogs(): string[];
  /** Counts of what the broker holds (in-process broker only). */
  stats?(): BrokerStats;
  close(): Promise<void>;
}

async function startTarget(): Promise<Target> {
  const broker: TestBroker = await startTestBroker({ config: { logLevel: 'info' }, extraListeners: [{ protocol: 'mqtt' }] });
  const plainPort = broker.running.listeners[1]?.port;
  if (plainPort === undefined) throw new Error('no plain listener');
  const ca = broker.pki.ca.cert;
  return {
    endpoint: { host: '127.0.0.1', port: plainPort, tlsPort: broker.port, ca },
    bystander: {
      v5: { port: broker.port, ca, protocolVersion: 5 },
      v4: { port: plainPort, tls: false, protocolVersion: 4 },
    },
    drainErrorLogs() {
      const bad = broker.logs.lines
        .filter((l) => Number(l.level) >= 50 || /uncaught/i.test(`${String(l.msg)} ${JSON.stringify(l.err ?? '')}`))
        .map((l) => JSON.stringify(l).slice(0, 600));
      broker.logs.lines.splice(0);
      broker.logs.raw.splice(0);
      return bad;
    },
    stats: () => {
      const b = broker.running.broker;
      return { connected: b.connectedClients, sessions: b.sessions.size, subscriptions: b.subscriptionCount, retained: b.countRetained() };
    },
    close: () => broker.close(),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Bystanders: two well-behaved clients that must keep working whatever the fuzzed connections do.

class Bystanders {
  /** Disconnections and errors of the bystanders (must stay empty). */
  readonly incidents: string[] = [];
  fuzzMessages = 0;
  private seq = 0;
  private readonly waiting = new Map<string, { v5: boolean; v4: boolean; done: () => void }>();

  private constructor(private readonly v5: MqttClient, private readonly v4: MqttClient) {
    for (const [name, client] of [['v5', v5], ['v4', v4]] as const) {
      client.on('message', (topic, payload) => {
        if (!topic.startsWith('bystand/')) {
          this.fuzzMessages += 1;
          return;
        }
        const w = this.waiting.get(payload.toString());
        if (!w) return;
        w[name] = true;
        if (w.v5 && w.v4) w.done();
      });
      client.on('close', () => this.incidents.push(`${name} bystander: connection closed`));
      client.on('error', (err) => this.incidents.push(`${name} bystander: ${err.message}`));
      client.on('disconnect', (packet) => this.incidents.push(`${name} bystander: DISCONNECT ${JSON.stringify(packet)}`));
    }
  }

  static async start(target: Target): Promise<Bystanders> {
    const auth = { username: 'bob', password: USERS.bob };
    const v5 = await connectMqtt({ keepEarly: false, ...target.bystander.v5, ...auth, clientId: `bystander-v5-${process.pid}` });
    const v4 = await connectMqtt({ keepEarly: false, ...target.bystander.v4, ...auth, clientId: `bystander-v4-${process.pid}` });
    for (const c of [v5, v4]) await c.subscribeAsync({ 'bystand/#': { qos: 1 }, 'fuzz/#': { qos: 0 } });
    return new Bystanders(v5, v4);
  }

  /** One message from one bystander to both (alternating); a problem description when it does not arrive. */
  async probe(label: string): Promise<string | undefined> {
    const n = ++this.seq;
    const payload = `probe-${n}`;
    const from = n % 2 === 0 ? this.v5 : this.v4;
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<boolean>((resolve) => {
      this.waiting.set(payload, { v5: false, v4: false, done: () => resolve(true) });
      timer = setTimeout(() => resolve(false), 5000);
    });
    try {
      from.publish(`bystand/${n % 2 === 0 ? 'v5' : 'v4'}`, payload, { qos: 1 });
      if (await arrived) return undefined;
      const w = this.waiting.get(payload);
      return `after ${label}: probe ${n} did not reach the bystanders within 5 s (v5 got it: ${w?.v5}, v4 got it: ${w?.v4}; connected: v5 ${this.v5.connected}, v4 ${this.v4.connected})`;
    } finally {
      clearTimeout(timer);
      this.waiting.delete(payload);
    }
  }

  async end(): Promise<void> {
    this.v5.removeAllListeners('close');
    this.v4.removeAllListeners('close');
    await Promise.all([this.v5.endAsync(), this.v4.endAsync()]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Process-level watch and memory.

const uncaught: string[] = [];
const onUncaught = (err: unknown): void => {
  uncaught.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
};

/** A forced full GC: global.gc when node runs with --expose-gc, else enabled now through V8 flags. */
function findGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function settledHeap(gc: (() => void) | undefined): Promise<{ heapUsed: number; rss: number }> {
  await sleep(500);
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(100);
  }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss };
}

const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------

let target: Target;
let bystanders: Bystanders;
const errorLogs: string[] = [];

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  target = await startTarget();
  bystanders = await Bystanders.start(target);
});

afterAll(async () => {
  await bystanders?.end();
  await target?.close();
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
});

/** Run one case, check it, probe the bystanders; the list of problems (empty = fine). */
async function playAndCheck(c: FuzzCase, rngSeed: number[]): Promise<{ outcome?: Outcome; problems: string[] }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), 20_000);
  });
  let outcome: Outcome | undefined;
  const problems: string[] = [];
  try {
    const result = await Promise.race([runCase(target.endpoint, c, new Rng(...rngSeed)), timeout]);
    if (result === 'timeout') problems.push('the case did not finish within 20 s');
    else {
      outcome = result;
      problems.push(...checkOutcome(c, result));
    }
  } catch (err) {
    problems.push(`could not run: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  const probe = await bystanders.probe(c.name);
  if (probe) problems.push(probe);
  return { ...(outcome === undefined ? {} : { outcome }), problems };
}

/** Error logs and uncaught exceptions since the previous check (each test answers for its own), bystanders. */
let uncaughtSeen = 0;
function checkProcessAndLogs(): void {
  errorLogs.push(...target.drainErrorLogs());
  const logs = errorLogs.splice(0);
  const exceptions = uncaught.slice(uncaughtSeen);
  uncaughtSeen = uncaught.length;
  expect(logs, 'error-level or "uncaught" broker log lines').toEqual([]);
  expect(exceptions, 'uncaught exceptions / unhandled rejections in the process').toEqual([]);
  expect(bystanders.incidents, 'bystander disconnections').toEqual([]);
}

describe('malformed packets with a known outcome', () => {
  const cases = VERSIONS.flatMap((v) => targetedCases(v));
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const { outcome, problems } = await playAndCheck(c, [SEED, 0x7a, c.name.length]);
    if (problems.length > 0) expect.fail(`${problems.join('; ')}\n${outcome ? describeOutcome(c, outcome) : 'no outcome'}`);
    checkProcessAndLogs();
  });
});

describe('a QoS 0 publisher sending 2048-byte messages 20 ms apart [facts]', () => {
  // [version, TLS, wait for the CONNACK before publishing]
  const variants: [Version, boolean, boolean][] = [
    [4, false, true],
    [4, true, true],
    [4, true, false],
    [5, false, true],
    [3, true, true],
  ];
  it.each(variants)('MQTT v%i (TLS: %s, CONNACK awaited: %s) stays connected and every message is delivered', async (version, tls, awaitConnack) => {
    const count = 10;
    const tag = `${version}-${tls}-${awaitConnack}`;
    const sub = await connectMqtt({ keepEarly: false, ...target.bystander.v4, username: 'bob', password: USERS.bob, clientId: `q0-sub-${tag}` });
    await sub.subscribeAsync('q0/x', { qos: 0 });
    const sizes: number[] = [];
    sub.on('message', (_t, payload) => sizes.push(payload.length));
    // Letters: payload bytes misread as a fixed header are invalid ones (0x41 is a PUBACK with flags 1).
    const payload = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(80).slice(0, 2048));
    const publish = rawPublish({ version, qos: 0, topic: 'q0/x', payload });
    if (version !== 5) expect(publish.subarray(0, 9).toString('hex')).toBe('308610000471302f78');
    const c: FuzzCase = {
      id: 0,
      name: `2048-byte QoS 0 v${version}`,
      version,
      connected: true,
      tls,
      steps: [
        { bytes: validConnect(version, `q0-pub-${tag}`), awaitReply: awaitConnack },
        ...Array.from({ length: count }, () => ({ bytes: publish, pauseMs: 20 })),
      ],
      expect: { staysConnected: true, forbidden: ['disconnect'] },
    };
    const { outcome, problems } = await playAndCheck(c, [SEED, version]);
    if (problems.length > 0) expect.fail(`${problems.join('; ')}\n${outcome ? describeOutcome(c, outcome) : 'no outcome'}`);
    const deadline = Date.now() + 5000;
    while (sizes.length < count && Date.now() < deadline) await sleep(20);
    expect(sizes).toEqual(Array.from({ length: count }, () => 2048));
    await sub.endAsync();
    checkProcessAndLogs();
  });
});

describe(`random mutations (seed ${SEED}, ${CASES} cases, ${LANES} at a time)`, () => {
  it('leave the broker serving, its answers well-formed and its memory flat', { timeout: Math.max(120_000, CASES * 100) }, async () => {
    const gc = findGc();
    const failures: string[] = [];
    const coverage = new Set<string>();
    let next = 0;
    const runUntil = async (end: number): Promise<void> => {
      const lane = async (): Promise<void> => {
        while (next < end) {
          const i = next++;
          const c = randomCase(SEED, i, 0.1);
          coverage.add(`v${c.version} ${c.name.split(' ')[1]}`);
          const { outcome, problems } = await playAndCheck(c, [SEED, i, 1]);
          if (problems.length > 0 && failures.length < 200) {
            failures.push(`case ${i} (${c.name}${c.tls ? ', TLS' : ''}): ${problems.join('; ')}\n    ${outcome ? describeOutcome(c, outcome) : ''}`);
          }
        }
      };
      await Promise.all(Array.from({ length: LANES }, lane));
      errorLogs.push(...target.drainErrorLogs());
    };

    const warmup = Math.min(CASES, Math.max(200, Math.floor(CASES / 10)));
    const started = Date.now();
    await runUntil(warmup);
    const base = await settledHeap(gc);
    const baseStats = target.stats?.();
    await runUntil(CASES);
    const elapsed = Date.now() - started;
    const end = await settledHeap(gc);
    const endStats = target.stats?.();
    const growth = (end.heapUsed - base.heapUsed) / MiB;
    console.log(
      `fuzz: ${CASES} cases in ${(elapsed / 1000).toFixed(1)} s, ${bystanders.fuzzMessages} fuzzed messages reached the bystanders; ` +
        `heap ${(base.heapUsed / MiB).toFixed(1)} -> ${(end.heapUsed / MiB).toFixed(1)} MiB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)}), ` +
        `rss ${(base.rss / MiB).toFixed(0)} -> ${(end.rss / MiB).toFixed(0)} MiB, forced GC: ${gc ? 'yes' : 'no'}; ` +
        `broker ${JSON.stringify(baseStats ?? {})} -> ${JSON.stringify(endStats ?? {})}`,
    );

    expect(failures, `\n${failures.slice(0, 20).join('\n')}\n(seed ${SEED}; FUZZ_SEED/FUZZ_CASES reproduce)`).toEqual([]);
    checkProcessAndLogs();
    if (CASES >= 1000) {
      // Every packet kind in every protocol version was tried.
      expect(coverage.size).toBeGreaterThanOrEqual(VERSIONS.length * 18);
    }
    if (baseStats && endStats) {
      // Every fuzzed connection is gone: only the bystanders remain.
      const deadline = Date.now() + 5000;
      while (target.stats!().connected !== baseStats.connected && Date.now() < deadline) await sleep(50);
      expect(target.stats!().connected, 'connections the broker still holds').toBe(baseStats.connected);
    }
    if (CASES > warmup) {
      // Without a forced GC the heap is noisier: allow more.
      expect(growth, 'heap growth (MiB) from the first batch to the end').toBeLessThan(gc ? HEAP_LIMIT_MIB : HEAP_LIMIT_MIB * 4);
    }
    // The broker still accepts new clients.
    const fresh = await connectMqtt({ keepEarly: false, ...target.bystander.v5, username: 'cam', password: USERS.cam, clientId: 'after-fuzz' });
    expect(fresh.connected).toBe(true);
    await fresh.endAsync();
  });
});
