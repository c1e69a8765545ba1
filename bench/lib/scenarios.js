// The load the generator puts on a broker. Every scenario is bounded in time and returns plain figures.
import { writeFileSync } from 'node:fs';
import { Client } from './client.js';
import { publishTemplate, fillPublishes, packetIdFor, encodePubacks, SUBSCRIPTION_ID_NONE, V311, V5 } from './wire.js';
import { startWindow, rssKiB } from './proc.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** Which (publisher, sequence) pairs a subscriber has seen: one bit each. */
class SeqSet {
  constructor() {
    this.bits = new Uint32Array(4096);
    this.distinct = 0;
    this.dups = 0;
  }

  add(seq) {
    const w = seq >>> 5;
    if (w >= this.bits.length) {
      let size = this.bits.length * 2;
      while (size <= w) size *= 2;
      const grown = new Uint32Array(size);
      grown.set(this.bits);
      this.bits = grown;
    }
    const m = 1 << (seq & 31);
    if ((this.bits[w] & m) !== 0) {
      this.dups++;
      return;
    }
    this.bits[w] |= m;
    this.distinct++;
  }
}

let clientCounter = 0;
function credentials(ctx, role, version = V311, keepalive = 0) {
  clientCounter += 1;
  return { clientId: `bench-${process.pid}-${role}-${clientCounter}`, username: ctx.username, password: ctx.password, keepalive, version };
}

/** Runs `fn(i)` for i < count with at most `concurrency` at a time; returns the settled results in order. */
async function pool(count, concurrency, fn) {
  const results = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      try {
        results[i] = { ok: true, value: await fn(i) };
      } catch (error) {
        results[i] = { ok: false, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

async function connectAll(clients, concurrency) {
  const results = await pool(clients.length, concurrency, (i) => clients[i].connect());
  const failed = results.find((r) => !r.ok);
  if (failed !== undefined) throw failed.error;
}

function tlsInfo(client) {
  const s = client.socket;
  if (typeof s.getProtocol !== 'function') return null;
  return { protocol: s.getProtocol(), cipher: s.getCipher()?.name };
}

function percentile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return sorted[Math.max(0, idx)];
}

/** Waits until `done()` or until nothing has moved for `idleMs` (progress() changes) or `maxMs` passed. */
async function drain(done, progress, idleMs, maxMs) {
  const start = nowMs();
  let last = progress();
  let lastChange = start;
  while (!done()) {
    await sleep(20);
    const p = progress();
    const t = nowMs();
    if (p !== last) {
      last = p;
      lastChange = t;
    }
    if (t - lastChange > idleMs || t - start > maxMs) return false;
  }
  return true;
}

/**
 * P publishers -> S subscribers, all on topic filter bench/t/+ (publisher i publishes on bench/t/i), MQTT 3.1.1
 * or 5 (`p.version`). Open loop: every publisher writes batches as fast as its socket takes them, at QoS 1
 * with at most `window` unacknowledged PUBLISHes (capped by the broker's Receive Maximum under MQTT 5).
 * `credit` (0: none) caps the deliveries owed (messages sent times S minus messages received) as a bound on
 * the broker's queues, raised to `creditMs` of deliveries at the best rate seen; the share of the window in
 * which it held a publisher back is reported (creditHeld), as is the broker's busy share: a bound too small
 * would couple throughput to the round trip through the generator. After the window
 * the publishers stop, the last deliveries are awaited, and loss and duplicates are counted per
 * (publisher, sequence number). With `subscriptionId` (MQTT 5), subscriber s subscribes with identifier
 * subscriptionId + s and every delivered PUBLISH is checked for it.
 * Throughput = deliveries per second in the measured window.
 */
export async function throughput(target, p, ctx) {
  const P = p.publishers;
  const S = p.subscribers;
  const qos = p.qos;
  const version = p.version ?? V311;
  const subIdBase = version === V5 ? (p.subscriptionId ?? 0) : 0;
  const subs = [];
  for (let s = 0; s < S; s++) subs.push(new Client(target, credentials(ctx, `sub${s}`, version)));
  const pubs = [];
  for (let i = 0; i < P; i++) pubs.push(new Client(target, credentials(ctx, `pub${i}`, version)));
  const all = [...subs, ...pubs];
  try {
    await connectAll(subs, 50);
    await Promise.all(subs.map((c, s) => c.subscribe('bench/t/+', qos, subIdBase > 0 ? subIdBase + s : 0)));
    await connectAll(pubs, 50);
    for (const c of subs) c.coalesceReads = p.coalesceReads;
    // MQTT 5: a publisher never has more unacknowledged QoS 1 PUBLISHes than the broker's Receive Maximum.
    const receiveMaximum = version === V5 ? (pubs[0].connackProperties?.receiveMaximum ?? 65535) : null;
    const window = receiveMaximum === null ? p.window : Math.min(p.window, receiveMaximum);

    let running = false;
    let sentTotal = 0;
    let deliveredTotal = 0;
    let forgiven = 0;
    let stalls = 0;
    let badAcks = 0;
    let refusedAcks = 0;
    let noMatchAcks = 0;
    let subIdMissing = 0;
    let subIdWrong = 0;

    const subState = subs.map((client, s) => {
      const st = { sets: Array.from({ length: P }, () => new SeqSet()), acks: new Uint16Array(8192), nAcks: 0, foreign: 0 };
      const wantId = subIdBase > 0 ? subIdBase + s : SUBSCRIPTION_ID_NONE;
      client.onPublish = (buf, start, _end, q, id, _dup, subscriptionId) => {
        const pub = buf.readUInt32BE(start);
        const set = st.sets[pub];
        if (set === undefined) st.foreign++;
        else set.add(buf.readUInt32BE(start + 4));
        deliveredTotal++;
        if (subscriptionId !== wantId) {
          if (subscriptionId === SUBSCRIPTION_ID_NONE) subIdMissing++;
          else subIdWrong++;
        }
        if (q > 0) {
          st.acks[st.nAcks++] = id;
          if (st.nAcks === st.acks.length) {
            client.write(encodePubacks(st.acks, st.nAcks, version));
            st.nAcks = 0;
          }
        }
      };
      client.onChunk = () => {
        if (st.nAcks > 0) {
          client.write(encodePubacks(st.acks, st.nAcks, version));
          st.nAcks = 0;
        }
        pumpAll();
      };
      return st;
    });

    const pubState = pubs.map((client, i) => {
      const st = {
        i, client, seq: 0, inflight: 0, blocked: false, acked: 0,
        outstanding: new Uint8Array(65536),
        tpl: publishTemplate(`bench/t/${i}`, qos, p.payload, version),
      };
      client.onPuback = (id, reasonCode) => {
        if (st.outstanding[id] === 1) {
          st.outstanding[id] = 0;
          st.inflight--;
          st.acked++;
          // MQTT 5: 0x10 is "no matching subscribers" (still a success), 0x80 and above a refusal.
          if (reasonCode >= 0x80) refusedAcks++;
          else if (reasonCode === 0x10) noMatchAcks++;
        } else {
          badAcks++;
        }
      };
      client.onChunk = () => pumpAll();
      client.socket.on('drain', () => {
        st.blocked = false;
        pumpAll();
      });
      return st;
    });

    // The bound grows to `creditMs` of deliveries at the best rate seen so far (measured every 100 ms): what
    // sits between the broker and the generator's reads grows with the rate, so a fixed count would pace a
    // fast broker by the round trip through the generator (bench/README.md, Flow control).
    let creditLimit = p.credit > 0 ? p.credit : Number.POSITIVE_INFINITY;
    // Time in which the credit held a publisher back (it had room in its socket and window).
    let creditHeldSince = -1;
    let creditHeldMs = 0;
    // Never write a dribble: a batch waits until it can be full (or half the QoS 1 window), else every
    // acknowledgement would let the publishers write one message at a time.
    const minBatch = Math.max(1, Math.min(p.batch, qos > 0 ? Math.floor(window / 2) : p.batch));
    const sendBatch = (st) => {
      if (st.blocked) return false;
      let n = p.batch;
      if (qos > 0) n = Math.min(n, window - st.inflight);
      if (n < minBatch) return false;
      const room = Math.floor((creditLimit - (sentTotal * S - deliveredTotal - forgiven)) / S);
      if (room < n) {
        if (creditHeldSince < 0) creditHeldSince = nowMs();
        if (room < minBatch) return false;
        n = room;
      }
      const buf = fillPublishes(st.tpl, n, st.i, st.seq, packetIdFor);
      if (qos > 0) {
        for (let j = 0; j < n; j++) st.outstanding[packetIdFor(st.seq + j)] = 1;
        st.inflight += n;
      }
      st.seq += n;
      sentTotal += n;
      if (!st.client.write(buf)) st.blocked = true;
      return true;
    };
    let rr = 0;
    let pumping = false;
    function pumpAll() {
      if (!running || pumping) return;
      pumping = true;
      let progressed = true;
      while (progressed) {
        progressed = false;
        for (let k = 0; k < P; k++) {
          if (sendBatch(pubState[(rr + k) % P])) progressed = true;
        }
        rr = (rr + 1) % P;
      }
      if (creditHeldSince >= 0 && sentTotal * S - deliveredTotal - forgiven + minBatch * S <= creditLimit) {
        creditHeldMs += nowMs() - creditHeldSince;
        creditHeldSince = -1;
      }
      pumping = false;
    }

    // If messages vanish (QoS 0 may lose), the credit would never come back: forgive what is outstanding after
    // a quiet spell and count a stall.
    let lastDelivered = -1;
    let quietTicks = 0;
    let lastTick = nowMs();
    const watchdog = setInterval(() => {
      if (!running) return;
      const t = nowMs();
      if (lastDelivered >= 0 && p.creditMs > 0 && Number.isFinite(creditLimit)) {
        const rate = ((deliveredTotal - lastDelivered) * 1000) / (t - lastTick);
        creditLimit = Math.max(creditLimit, Math.round((rate * p.creditMs) / 1000));
      }
      lastTick = t;
      if (deliveredTotal === lastDelivered && pubState.every((st) => !st.blocked)) {
        quietTicks++;
        if (quietTicks >= 10) {
          const outstanding = sentTotal * S - deliveredTotal - forgiven;
          if (outstanding > 0 && Number.isFinite(creditLimit)) {
            forgiven += outstanding;
            stalls++;
          }
          quietTicks = 0;
          pumpAll();
        }
      } else {
        quietTicks = 0;
      }
      lastDelivered = deliveredTotal;
    }, 100);

    running = true;
    pumpAll();
    await sleep(p.warmupMs);
    const d0 = deliveredTotal;
    const s0 = sentTotal;
    const a0 = pubState.reduce((a, st) => a + st.acked, 0);
    if (creditHeldSince >= 0) creditHeldSince = nowMs();
    creditHeldMs = 0;
    const stop = startWindow(ctx.brokerPid);
    await sleep(p.durationMs);
    const d1 = deliveredTotal;
    const s1 = sentTotal;
    const a1 = pubState.reduce((a, st) => a + st.acked, 0);
    const w = stop();
    if (creditHeldSince >= 0) creditHeldMs += nowMs() - creditHeldSince;
    running = false;
    clearInterval(watchdog);

    const expected = sentTotal * S;
    const distinct = () => subState.reduce((a, st) => a + st.sets.reduce((b, set) => b + set.distinct, 0), 0);
    const unacked = () => pubState.reduce((a, st) => a + st.inflight, 0);
    const drainStart = nowMs();
    const drained = await drain(
      () => distinct() >= expected && unacked() === 0,
      () => deliveredTotal + pubState.reduce((a, st) => a + st.acked, 0),
      p.drainIdleMs,
      p.drainMaxMs,
    );
    const drainMs = nowMs() - drainStart;
    const dups = subState.reduce((a, st) => a + st.sets.reduce((b, set) => b + set.dups, 0), 0);
    const seen = distinct();
    const disconnected = all.filter((c) => c.closed).length;
    return {
      version,
      window: qos > 0 ? window : null,
      receiveMaximum,
      deliveredPerSec: ((d1 - d0) * 1000) / w.wallMs,
      publishedPerSec: ((s1 - s0) * 1000) / w.wallMs,
      ackedPerSec: qos > 0 ? ((a1 - a0) * 1000) / w.wallMs : Number.NaN,
      // Deliveries owed grew by this much per second of the window: > 0 means the broker took messages in
      // faster than it delivered them (its queues grew), so delivered/s is the figure to read.
      backlogGrowthPerSec: (((s1 - s0) * S - (d1 - d0)) * 1000) / w.wallMs,
      creditHeld: creditHeldMs / w.wallMs,
      creditBound: Number.isFinite(creditLimit) ? creditLimit : null,
      drainMs,
      windowMs: w.wallMs,
      generatorCpu: w.generatorCpu,
      generatorWait: w.generatorWait,
      brokerCpu: w.brokerCpu,
      brokerWait: w.brokerWait,
      brokerBusy: w.brokerBusy,
      // Broker read/write system calls per message delivered in the window (each TLS write is a record).
      readsPerMsg: d1 > d0 ? w.brokerReads / (d1 - d0) : Number.NaN,
      writesPerMsg: d1 > d0 ? w.brokerWrites / (d1 - d0) : Number.NaN,
      sent: sentTotal,
      expected,
      delivered: deliveredTotal,
      lost: expected - seen,
      lossPct: expected > 0 ? ((expected - seen) * 100) / expected : 0,
      dups,
      unacked: unacked(),
      badAcks,
      refusedAcks,
      noMatchAcks,
      // MQTT 5 with subscription identifiers: deliveries without one, and with another than the subscriber's.
      subscriptionIds: subIdBase > 0,
      subIdMissing,
      subIdWrong,
      foreign: subState.reduce((a, st) => a + st.foreign, 0),
      stalls,
      drained,
      disconnectedEarly: disconnected,
      tls: tlsInfo(all[0]),
    };
  } finally {
    await Promise.all(all.map((c) => c.disconnect()));
  }
}

/** One publisher -> one subscriber at a fixed rate; send time (hrtime) in the payload. */
export async function latency(target, p, ctx) {
  const qos = p.qos;
  const sub = new Client(target, credentials(ctx, 'lsub'));
  const pub = new Client(target, credentials(ctx, 'lpub'));
  try {
    await sub.connect();
    await sub.subscribe('bench/t/+', qos);
    await pub.connect();
    const tpl = publishTemplate('bench/t/0', qos, p.payload);
    const set = new SeqSet();
    const samples = [];
    // BENCH_LATENCY_DUMP=PREFIX: every sample as "ms-since-warm-up latency-us" lines in PREFIX-<broker>-<run>.
    const dump = ctx.latencyDump === undefined ? undefined : [];
    let warmNs = BigInt(Number.MAX_SAFE_INTEGER) * 1000n;
    let delivered = 0;
    const acks = [];
    sub.onPublish = (buf, start, _end, q, id) => {
      const t = process.hrtime.bigint();
      const sent = buf.readBigUInt64BE(start + 8);
      set.add(buf.readUInt32BE(start + 4));
      delivered++;
      if (sent >= warmNs) {
        samples.push(Number(t - sent) / 1000);
        if (dump !== undefined) dump.push(`${(Number(sent - warmNs) / 1e6).toFixed(3)} ${(Number(t - sent) / 1000).toFixed(1)}`);
      }
      if (q > 0) acks.push(id);
    };
    sub.onChunk = () => {
      if (acks.length > 0) {
        sub.write(encodePubacks(acks, acks.length));
        acks.length = 0;
      }
    };
    let inflight = 0;
    let acked = 0;
    pub.onPuback = () => {
      inflight--;
      acked++;
    };

    let seq = 0;
    const t0 = nowMs();
    const tick = () => {
      const due = Math.min(1000, Math.floor(((nowMs() - t0) * p.rate) / 1000) - seq);
      for (let k = 0; k < due; k++) {
        const buf = fillPublishes(tpl, 1, 0, seq, packetIdFor);
        buf.writeBigUInt64BE(process.hrtime.bigint(), tpl.payloadOffset + 8);
        seq++;
        if (qos > 0) inflight++;
        pub.write(buf);
      }
    };
    const timer = setInterval(tick, 1);
    await sleep(p.warmupMs);
    warmNs = process.hrtime.bigint();
    const stop = startWindow(ctx.brokerPid);
    await sleep(p.durationMs);
    clearInterval(timer);
    const w = stop();
    await drain(() => set.distinct >= seq && inflight === 0, () => delivered + acked, p.drainIdleMs, p.drainMaxMs);
    if (dump !== undefined) writeFileSync(ctx.latencyDump, `${dump.join('\n')}\n`);
    samples.sort((a, b) => a - b);
    return {
      rate: p.rate,
      samples: samples.length,
      p50Us: percentile(samples, 0.5),
      p99Us: percentile(samples, 0.99),
      p999Us: percentile(samples, 0.999),
      maxUs: samples.length > 0 ? samples[samples.length - 1] : Number.NaN,
      generatorCpu: w.generatorCpu,
      brokerCpu: w.brokerCpu,
      sent: seq,
      expected: seq,
      delivered,
      lost: seq - set.distinct,
      lossPct: seq > 0 ? ((seq - set.distinct) * 100) / seq : 0,
      dups: set.dups,
      unacked: inflight,
      tls: tlsInfo(sub),
    };
  } finally {
    await Promise.all([sub.disconnect(), pub.disconnect()]);
  }
}

/**
 * `concurrency` loops of: TCP + TLS + CONNECT (passwd user) until CONNACK, then DISCONNECT and close.
 * The first `warmupMs` are not measured (a Node broker, and the generator, run cold code at first);
 * counted are the cycles completed in the window, and the connect times of those begun in it.
 */
export async function connections(target, p, ctx) {
  const times = [];
  let completed = 0;
  let errors = 0;
  let firstError = null;
  let tls = null;
  let measuring = false;
  let stop = null;
  const end = nowMs() + p.warmupMs + p.durationMs;
  const loop = async () => {
    while (nowMs() < end) {
      const counted = measuring;
      const c = new Client(target, credentials(ctx, 'c'));
      try {
        const ms = await c.connect();
        if (counted) times.push(ms);
        if (tls === null) tls = tlsInfo(c);
        await c.disconnect();
        if (measuring && nowMs() <= end) completed++;
      } catch (err) {
        if (counted) errors++;
        firstError ??= String(err?.message ?? err);
        c.socket?.destroy();
        await sleep(10);
      }
    }
  };
  const warm = sleep(p.warmupMs).then(() => {
    measuring = true;
    stop = startWindow(ctx.brokerPid);
  });
  await Promise.all([warm, ...Array.from({ length: p.concurrency }, loop)]);
  const w = stop();
  times.sort((a, b) => a - b);
  return {
    concurrency: p.concurrency,
    connections: completed,
    connPerSec: (completed * 1000) / w.wallMs,
    p50Ms: percentile(times, 0.5),
    p99Ms: percentile(times, 0.99),
    maxMs: times.length > 0 ? times[times.length - 1] : Number.NaN,
    brokerCpuMsPerConn: completed > 0 ? w.brokerCpuMs / completed : Number.NaN,
    brokerCpu: w.brokerCpu,
    generatorCpu: w.generatorCpu,
    errors,
    firstError,
    tls,
  };
}

/** RSS of the idle broker, then with N idle TLS clients connected (opened `concurrency` at a time). */
export async function memory(target, p, ctx) {
  const clients = [];
  const steps = [];
  let errors = 0;
  let firstError = null;
  try {
    await sleep(p.settleMs);
    const idle = rssKiB(ctx.brokerPid);
    // V8 gives back the young generation that start-up grew only after some idle seconds (its memory
    // reducer): a broker that has been idle a while is smaller than one that just started.
    await sleep(p.idleMs);
    const settled = rssKiB(ctx.brokerPid);
    const stop = startWindow(ctx.brokerPid);
    for (const count of p.steps) {
      const add = count - clients.length;
      const fresh = Array.from({ length: add }, () => new Client(target, credentials(ctx, 'idle')));
      const opening = nowMs();
      const results = await pool(fresh.length, p.concurrency, (i) => fresh[i].connect());
      const openMs = nowMs() - opening;
      const times = [];
      results.forEach((r, i) => {
        if (r.ok) {
          times.push(r.value);
          clients.push(fresh[i]);
        } else {
          errors++;
          firstError ??= String(r.error?.message ?? r.error);
        }
      });
      await sleep(p.settleMs);
      const rss = rssKiB(ctx.brokerPid);
      const connected = clients.filter((c) => !c.closed).length;
      times.sort((a, b) => a - b);
      steps.push({
        target: count, clients: connected, rssKiB: rss, kibPerClient: connected > 0 ? (rss - idle) / connected : Number.NaN,
        openMs, connectP50Ms: percentile(times, 0.5), connectP99Ms: percentile(times, 0.99),
      });
    }
    const w = stop();
    return {
      idleRssKiB: idle,
      settledRssKiB: settled,
      steps,
      errors,
      firstError,
      brokerCpuMsPerConn: clients.length > 0 ? w.brokerCpuMs / clients.length : Number.NaN,
      generatorCpu: w.generatorCpu,
      generatorRssKiB: Math.round(process.memoryUsage.rss() / 1024),
    };
  } finally {
    for (let i = 0; i < clients.length; i += 500) {
      await Promise.all(clients.slice(i, i + 500).map((c) => c.disconnect()));
    }
  }
}

export const kinds = { throughput, latency, connections, memory };
