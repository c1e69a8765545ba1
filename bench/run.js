// npm run bench: our broker against Debian's mosquitto under the same load, on loopback.
// Every measurement starts a fresh broker (pinned to one core) and a fresh load generator process (pinned to
// the other), alternating brokers A B A B; prints medians (min..max) and ratios, writes bench/results/*.json.
// Knobs (env): see bench/README.md.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BROKERS, children, killAll, pinPrefix, startBroker, tools } from './lib/brokers.js';
import { cpuMs } from './lib/proc.js';
import { figuresFor, flatten, summarize, table } from './lib/report.js';
import { inflightMessages, makeShared, mosquittoOnlyDirectives } from './lib/setup.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const env = process.env;
const quick = env.BENCH_QUICK === '1' || env.BENCH_QUICK === 'true';
const num = (name, fallback) => {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: expected a non-negative number`);
  return n;
};
const list = (name, fallback) => (env[name] ?? fallback).split(',').map((s) => s.trim()).filter((s) => s !== '');

const runs = num('BENCH_RUNS', quick ? 1 : 3);
// Opening 10,000 TLS clients takes the better part of a minute per broker, and RSS hardly varies: one run each.
const memoryRuns = num('BENCH_MEMORY_RUNS', Math.min(runs, 1));
const seconds = num('BENCH_SECONDS', quick ? 1 : 5);
const warmupMs = num('BENCH_WARMUP_MS', quick ? 300 : 1000);
const payload = num('BENCH_PAYLOAD', 64);
const inflight = inflightMessages();
// QoS 1 window per publisher: the brokers' Receive Maximum (max_inflight_messages) unless set lower.
const window = num('BENCH_WINDOW', inflight === 0 ? 100 : inflight);
// Deliveries owed at most (0: no bound): bounds the brokers' queues (so the drain is short and the loss check
// exact) while keeping a third of a second of work queued upstream of the subscribers, so that a reader that
// pauses or is descheduled for milliseconds does not starve the broker (bench/README.md, Flow control).
const credit = num('BENCH_CREDIT', 100_000);
// ... raised during the run to this many milliseconds of deliveries at the best rate seen (0: fixed).
const creditMs = num('BENCH_CREDIT_MS', 100);
const batch = num('BENCH_BATCH', 32);
const latencyRate = num('BENCH_LATENCY_RATE', quick ? 500 : 2000);
const connectSeconds = num('BENCH_CONNECT_SECONDS', quick ? 1 : 4);
// A Node broker's JIT keeps compiling its connect and close paths for several seconds of connection churn
// (perf: ~0.33 ms of compiler work per connection in the first 5 s, ~0.09 ms after 20 s); a broker runs for
// days, so the connection runs measure after this warm-up. mosquitto has nothing to warm up.
const connectWarmupMs = num('BENCH_CONNECT_WARMUP_MS', quick ? 300 : 5000);
const verify = env.BENCH_VERIFY === '1';
const genNodeFlags = (env.BENCH_GEN_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
const brokerNames = list('BENCH_BROKERS', 'ours,mosquitto,floor');
const latencyDump = process.env.BENCH_LATENCY_DUMP || undefined;
const resultsDir = env.BENCH_RESULTS_DIR ?? join(here, 'results');
const pin = env.BENCH_PIN !== '0' && tools.taskset && os.availableParallelism() >= 2;
const brokerCore = pin ? num('BENCH_BROKER_CORE', 0) : null;
const genCore = pin ? num('BENCH_GEN_CORE', 1) : null;
const hardNofile = Number(execFileSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()) || 1024;
const nofile = Math.min(65536, hardNofile);
let memorySteps = list('BENCH_CLIENTS', quick ? '50,100' : '1000,10000').map(Number);
const notes = [];
if (memorySteps.some((n) => n + 200 > nofile)) {
  notes.push(`memory steps capped: the file-descriptor limit here is ${nofile}`);
  memorySteps = memorySteps.map((n) => Math.min(n, nofile - 200));
}

for (const b of brokerNames) if (BROKERS[b] === undefined) throw new Error(`BENCH_BROKERS: unknown broker ${b} (known: ${Object.keys(BROKERS).join(', ')})`);
const baseline = brokerNames.includes('mosquitto') ? 'mosquitto' : brokerNames[brokerNames.length - 1];

const drain = { drainIdleMs: 1500, drainMaxMs: quick ? 5000 : 15_000 };
// Pause of throughput subscribers after each read: long enough that a read takes several packets (a fan-out
// subscriber gets 1/50 of the traffic, so it waits longer), short against the run.
const coalesceEnv = env.BENCH_COALESCE_MS === undefined || env.BENCH_COALESCE_MS === '' ? null : num('BENCH_COALESCE_MS', 0);
const flow = { payload, window, credit, creditMs, batch, warmupMs, durationMs: seconds * 1000, ...drain };
const fanIn = { ...flow, coalesceReads: coalesceEnv ?? 1 };
const fanOut = { ...flow, coalesceReads: coalesceEnv ?? 5 };
const SCENARIOS = [
  { name: 'fanin-qos0', kind: 'throughput', title: 'fan-in QoS 0, TLS (8 publishers -> 1 subscriber)', params: { transport: 'tls', publishers: 8, subscribers: 1, qos: 0, ...fanIn } },
  { name: 'fanin-qos1', kind: 'throughput', title: `fan-in QoS 1, TLS (8 -> 1, ${window} in flight per publisher)`, params: { transport: 'tls', publishers: 8, subscribers: 1, qos: 1, ...fanIn } },
  { name: 'fanin-qos1-v5', kind: 'throughput', title: `fan-in QoS 1, MQTT 5, TLS (8 -> 1, ${window} in flight per publisher, at most Receive Maximum)`, params: { transport: 'tls', publishers: 8, subscribers: 1, qos: 1, version: 5, ...fanIn } },
  { name: 'fanout-qos0', kind: 'throughput', title: 'fan-out QoS 0, TLS (1 publisher -> 50 subscribers)', params: { transport: 'tls', publishers: 1, subscribers: quick ? 10 : 50, qos: 0, ...fanOut } },
  { name: 'fanout-qos0-v5', kind: 'throughput', title: 'fan-out QoS 0, MQTT 5 with subscription identifiers, TLS (1 -> 50)', params: { transport: 'tls', publishers: 1, subscribers: quick ? 10 : 50, qos: 0, version: 5, subscriptionId: 1000, ...fanOut } },
  { name: 'fanout-qos0-tcp', kind: 'throughput', title: 'fan-out QoS 0, plain TCP (1 -> 50)', params: { transport: 'tcp', publishers: 1, subscribers: quick ? 10 : 50, qos: 0, ...fanOut } },
  { name: 'latency-qos0', kind: 'latency', title: `latency QoS 0, TLS, 1 -> 1 at ${latencyRate} msgs/s`, params: { transport: 'tls', qos: 0, rate: latencyRate, payload, warmupMs, durationMs: seconds * 1000, ...drain } },
  { name: 'latency-qos1', kind: 'latency', title: `latency QoS 1, TLS, 1 -> 1 at ${latencyRate} msgs/s`, params: { transport: 'tls', qos: 1, rate: latencyRate, payload, warmupMs, durationMs: seconds * 1000, ...drain } },
  { name: 'connect-seq', kind: 'connections', title: 'TLS connection rate, sequential (TCP+TLS+CONNECT..CONNACK, DISCONNECT)', params: { transport: 'tls', concurrency: 1, warmupMs: connectWarmupMs, durationMs: connectSeconds * 1000 } },
  { name: 'connect-c20', kind: 'connections', title: 'TLS connection rate, 20 concurrent', params: { transport: 'tls', concurrency: 20, warmupMs: connectWarmupMs, durationMs: connectSeconds * 1000 } },
  { name: 'memory', kind: 'memory', title: `memory: idle, then ${memorySteps.join(' and ')} idle TLS clients (${memoryRuns} run${memoryRuns === 1 ? '' : 's'} each)`, params: { transport: 'tls', steps: memorySteps, concurrency: 50, settleMs: quick ? 500 : 2000, idleMs: quick ? 500 : 30_000 } },
];
const wanted = list('BENCH_SCENARIOS', SCENARIOS.map((s) => s.name).join(','));
for (const w of wanted) if (!SCENARIOS.some((s) => s.name === w)) throw new Error(`BENCH_SCENARIOS: unknown scenario ${w} (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
const scenarios = SCENARIOS.filter((s) => wanted.includes(s.name));

const workDir = mkdtempSync(join(os.tmpdir(), 'mab-bench-'));
let stopping = false;
async function shutdown(code, reason) {
  if (stopping) return;
  stopping = true;
  if (reason !== undefined) console.error(reason);
  await killAll();
  if (env.BENCH_KEEP !== '1') rmSync(workDir, { recursive: true, force: true });
  else console.error(`kept ${workDir}`);
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130, 'interrupted: stopping brokers and generators'));
process.on('SIGTERM', () => void shutdown(143, 'terminated: stopping brokers and generators'));
process.on('uncaughtException', (err) => void shutdown(1, err.stack));
process.on('unhandledRejection', (err) => void shutdown(1, err instanceof Error ? err.stack : String(err)));

/** Busy and total CPU ticks of the whole machine (/proc/stat), to see what else ran meanwhile. */
function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const busy = f.slice(0, 8).reduce((a, b) => a + b, 0) - idle;
  return busy;
}
const tick = (() => {
  try {
    return 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  } catch {
    return 10;
  }
})();

function generatorTimeout(sc) {
  const p = sc.params;
  if (sc.kind === 'memory') return 60_000 + p.idleMs + Math.max(...p.steps) * 20;
  if (sc.kind === 'connections') return p.warmupMs + p.durationMs + 60_000;
  return p.warmupMs + p.durationMs + p.drainMaxMs + 60_000;
}

/** One generator process (pinned), one job; resolves with its result plus what the harness measured around it. */
function runGenerator(sc, target, ctx) {
  return new Promise((resolve, reject) => {
    const script = `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
    const argv = [...pinPrefix(genCore), process.execPath, ...genNodeFlags, join(here, 'generator.js')];
    const child = spawn('bash', ['-c', script, 'bench-generator', ...argv], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(child);
    let done = false;
    let before = null;
    const finish = (fn) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => finish(() => {
      child.kill('SIGKILL');
      reject(new Error(`generator timed out after ${generatorTimeout(sc)} ms`));
    }), generatorTimeout(sc));
    child.on('exit', (code, signal) => {
      children.delete(child);
      finish(() => reject(new Error(`generator exited (${code ?? signal}) without a result`)));
    });
    child.on('message', (msg) => {
      if (msg.ready === true) {
        before = { machine: machineTicks(), broker: cpuMs(ctx.brokerPid), gen: cpuMs(child.pid), self: process.cpuUsage(), t: Date.now() };
        child.send({ kind: sc.kind, target, params: sc.params, ctx });
        return;
      }
      const wallMs = Date.now() - before.t;
      const self = process.cpuUsage(before.self);
      const others = (machineTicks() - before.machine) * tick - (cpuMs(ctx.brokerPid) - before.broker)
        - (cpuMs(child.pid) - before.gen) - (self.user + self.system) / 1000;
      finish(() => {
        if (msg.error !== undefined) reject(new Error(`generator: ${msg.error}`));
        else resolve({ ...msg.result, backgroundCpu: Math.max(0, others / wallMs) });
      });
    });
  });
}

async function measure(sc, brokerName, shared, index) {
  const dir = join(workDir, `${sc.name}-${brokerName}-${index}`);
  mkdirSync(dir, { recursive: true });
  const broker = await startBroker(brokerName, shared, dir, { core: brokerCore, nofile });
  try {
    const target = {
      transport: sc.params.transport,
      host: '127.0.0.1',
      port: sc.params.transport === 'tls' ? broker.tlsPort : broker.tcpPort,
      // The harness's readiness check verified the certificate against our CA; the generator does not
      // verify again unless BENCH_VERIFY=1 (it costs the generator ~30% more per TLS connection).
      ca: verify ? shared.ca : undefined,
      servername: 'localhost',
    };
    const ctx = { brokerPid: broker.pid, username: shared.username, password: shared.password };
    if (latencyDump !== undefined && sc.kind === 'latency') ctx.latencyDump = `${latencyDump}-${sc.name}-${brokerName}-${index + 1}`;
    const result = await runGenerator(sc, target, ctx);
    const exited = broker.exited();
    if (exited !== null) throw new Error(`${brokerName} died during the scenario (${exited.code ?? exited.signal}):\n${broker.logTail()}`);
    return { result, confLines: broker.confLines };
  } catch (err) {
    const exited = broker.exited();
    if (exited !== null && !String(err.message).includes('died during')) {
      err.message += `\n${brokerName} exited (${exited.code ?? exited.signal}):\n${broker.logTail()}`;
    }
    throw err;
  } finally {
    await broker.stop();
  }
}

/** Which source the "ours" figures belong to: commit, and the files under src/ that differ from it. */
function sourceState() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: join(here, '..'), encoding: 'utf8' }).trim();
    const changed = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: join(here, '..'), encoding: 'utf8' })
      .split('\n').filter((l) => l.trim() !== '').map((l) => l.slice(3));
    return { commit, uncommittedSrc: changed };
  } catch {
    return { commit: 'unknown', uncommittedSrc: [] };
  }
}

async function main() {
  for (const b of brokerNames) BROKERS[b].check();
  const source = sourceState();
  const startedAt = new Date();
  const loadStart = os.loadavg();
  console.log(`mqtt-acme-broker bench${quick ? ' (quick)' : ''}: ${brokerNames.map((b) => BROKERS[b].label).join(' vs ')}`);
  console.log(`  ${runs} run(s) each (memory: ${memoryRuns}), alternating ${brokerNames.join(' ')}; ${seconds} s measured after ${warmupMs} ms warm-up (connection runs: ${connectSeconds} s after ${connectWarmupMs} ms); payload ${payload} B; loopback only`);
  console.log(pin
    ? `  pinned with taskset: brokers on core ${brokerCore}, generator on core ${genCore}`
    : '  NOT pinned (taskset missing, one core, or BENCH_PIN=0): broker and generator share the CPUs');
  if (brokerNames.includes('mosquitto')) console.log(`  mosquitto also gets: ${mosquittoOnlyDirectives().join('; ')}; both get max_queued_messages 0 (mosquitto 2.0.11 drops QoS 1 messages otherwise) and max_inflight_messages ${inflight}`);
  console.log(`  source: ${source.commit}${source.uncommittedSrc.length > 0 ? ` + uncommitted ${source.uncommittedSrc.join(', ')}` : ''}`);
  console.log(`  load average at start: ${loadStart.map((l) => l.toFixed(2)).join(' ')} on ${os.availableParallelism()} CPUs`);
  for (const n of notes) console.log(`  note: ${n}`);

  const shared = await makeShared(workDir);
  const report = {
    tool: 'mqtt-acme-broker bench',
    startedAt: startedAt.toISOString(),
    quick,
    runs,
    brokers: brokerNames,
    baseline,
    brokerLabels: Object.fromEntries(brokerNames.map((b) => [b, BROKERS[b].label])),
    source,
    machine: { cpus: os.availableParallelism(), node: process.version, kernel: os.release(), loadStart, pinned: pin, brokerCore, genCore, nofile },
    settings: { verify, coalesceMs: coalesceEnv ?? 'fan-in 1, fan-out 5', memoryRuns, seconds, warmupMs, payload, inflight, window, credit, creditMs, batch, latencyRate, connectSeconds, connectWarmupMs, memorySteps, certificates: shared.certSource, notes },
    configs: {},
    tls: {},
    scenarios: [],
    failures: [],
  };

  for (const sc of scenarios) {
    console.log(`\n${sc.title}`);
    const perBroker = Object.fromEntries(brokerNames.map((b) => [b, []]));
    const failed = {};
    const scRuns = sc.kind === 'memory' ? memoryRuns : runs;
    for (let i = 0; i < scRuns; i++) {
      for (const b of brokerNames) {
        if (BROKERS[b].scenarios !== undefined && !BROKERS[b].scenarios.includes(sc.name)) continue;
        const t0 = Date.now();
        try {
          const { result, confLines } = await measure(sc, b, shared, i);
          report.configs[b] ??= confLines;
          perBroker[b].push(flatten(sc.kind, result));
          console.log(`  ${b} #${i + 1}: ${oneLine(sc.kind, result)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
          if (result.tls != null) report.tls[b] ??= `${result.tls.protocol} ${result.tls.cipher}`;
        } catch (err) {
          failed[b] = (failed[b] ?? 0) + 1;
          report.failures.push({ scenario: sc.name, broker: b, run: i + 1, error: String(err.message) });
          console.log(`  ${b} #${i + 1}: FAILED ${err.message}`);
        }
        if (stopping) return;
      }
    }
    const figures = figuresFor(sc.kind, sc.params);
    const summary = {};
    for (const f of figures) {
      const s = {};
      for (const b of brokerNames) s[b] = summarize(perBroker[b].map((r) => r[f.key]));
      s.ratio = Object.fromEntries(brokerNames.filter((b) => b !== baseline).map((b) => [b, s[b].median / s[baseline].median]));
      summary[f.key] = s;
    }
    const entry = {
      name: sc.name, title: sc.title, kind: sc.kind, params: sc.params, figures, summary,
      generatorCpu: Object.fromEntries(brokerNames.map((b) => [b, Math.max(...perBroker[b].map((r) => r.generatorCpu))])),
      backgroundCpu: Object.fromEntries(brokerNames.map((b) => [b, summarize(perBroker[b].map((r) => r.backgroundCpu)).median])),
      generatorOverloaded: brokerNames.filter((b) => perBroker[b].some((r) => r.generatorCpu > 0.8)),
      // Throughput runs in which the broker's main thread had no work for more than 10% of the window: not at its capacity.
      brokerIdle: sc.kind === 'throughput' ? brokerNames.filter((b) => perBroker[b].some((r) => r.brokerBusy < 0.9)) : [],
      subscriptionIdMissing: sc.kind === 'throughput' ? brokerNames.filter((b) => perBroker[b].some((r) => r.subIdMissing + r.subIdWrong > 0)) : [],
      failed,
      failures: Object.values(failed).reduce((a, n) => a + n, 0),
      results: perBroker,
    };
    if (sc.kind === 'throughput' || sc.kind === 'latency') {
      entry.delivery = Object.fromEntries(brokerNames.map((b) => [b, {
        expected: perBroker[b].reduce((a, r) => a + r.expected, 0),
        lost: perBroker[b].reduce((a, r) => a + r.lost, 0),
        dups: perBroker[b].reduce((a, r) => a + r.dups, 0),
      }]));
    }
    report.scenarios.push(entry);
  }

  report.finishedAt = new Date().toISOString();
  report.machine.loadEnd = os.loadavg();
  const text = table(report);
  console.log(`\n${text}`);
  if (Object.keys(report.tls).length > 0) console.log(`\nnegotiated: ${Object.entries(report.tls).map(([b, t]) => `${b} ${t}`).join('; ')}`);
  console.log(`\nload average at end: ${report.machine.loadEnd.map((l) => l.toFixed(2)).join(' ')}; ratios are medians ${brokerNames.filter((b) => b !== baseline).join(', ')} / ${baseline}`);
  const overloaded = report.scenarios.filter((s) => s.generatorOverloaded.length > 0);
  if (overloaded.length > 0) {
    console.log(`(!) generator above 80% of its core in: ${overloaded.map((s) => `${s.name} [${s.generatorOverloaded.join(', ')}]`).join('; ')}: those figures may be bounded by the generator, not the broker`);
  }
  const idle = report.scenarios.filter((s) => s.brokerIdle.length > 0);
  if (idle.length > 0) {
    console.log(`(?) broker idle more than 10% of a throughput window (main thread running or runnable < 0.9) in: ${idle.map((s) => `${s.name} [${s.brokerIdle.join(', ')}]`).join('; ')}: not driven to its capacity there`);
  }
  const noSubId = report.scenarios.filter((s) => s.subscriptionIdMissing.length > 0);
  if (noSubId.length > 0) {
    console.log(`(!) deliveries without the subscriber's subscription identifier in: ${noSubId.map((s) => `${s.name} [${s.subscriptionIdMissing.join(', ')}]`).join('; ')}`);
  }
  report.table = text;
  mkdirSync(resultsDir, { recursive: true });
  const stamp = report.startedAt.replace(/[:.]/g, '-');
  const json = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(join(resultsDir, `bench-${stamp}.json`), json);
  writeFileSync(join(resultsDir, 'latest.json'), json);
  console.log(`results: ${join(resultsDir, `bench-${stamp}.json`)} (and latest.json)`);
  if (report.failures.length > 0) {
    console.log(`${report.failures.length} measurement(s) failed`);
    process.exitCode = 1;
  }
}

function oneLine(kind, r) {
  const pct = (x) => `${Math.round(x * 100)}%`;
  const gen = `gen ${pct(r.generatorCpu)}${r.generatorCpu > 0.8 ? ' (!)' : ''}`;
  switch (kind) {
    case 'throughput': {
      const extras = [];
      if (r.creditHeld > 0.01) extras.push(`bound of ${r.creditBound.toLocaleString('en-US')} owed held publishers ${pct(r.creditHeld)} of the time`);
      if (Math.abs(r.backlogGrowthPerSec) > 0.05 * r.deliveredPerSec) extras.push(`backlog ${r.backlogGrowthPerSec > 0 ? '+' : ''}${Math.round(r.backlogGrowthPerSec).toLocaleString('en-US')}/s`);
      if (r.window !== null && r.window !== undefined) extras.push(`window ${r.window}${r.receiveMaximum !== null && r.receiveMaximum !== undefined ? ` (Receive Maximum ${r.receiveMaximum})` : ''}`);
      if (r.subscriptionIds) extras.push(r.subIdMissing + r.subIdWrong === 0 ? 'subscription id on every delivery' : `subscription id MISSING on ${r.subIdMissing}, wrong on ${r.subIdWrong} of ${r.delivered}`);
      if (r.refusedAcks || r.badAcks) extras.push(`PUBACK refused ${r.refusedAcks}, unexpected ${r.badAcks}`);
      return `${Math.round(r.deliveredPerSec).toLocaleString('en-US')} msgs/s, broker ${pct(r.brokerCpu)}${Number.isFinite(r.brokerBusy) ? ` (busy ${pct(r.brokerBusy)}, of which ${pct(r.brokerWait)} waiting for its core)` : ''}${Number.isFinite(r.writesPerMsg) ? ` (syscalls/msg r ${r.readsPerMsg.toFixed(2)} w ${r.writesPerMsg.toFixed(2)})` : ''}, ${gen}, lost ${r.lost}, dups ${r.dups}${r.stalls ? `, stalls ${r.stalls}` : ''}${r.unacked ? `, unacked ${r.unacked}` : ''}${extras.length > 0 ? `; ${extras.join(', ')}` : ''}`;
    }
    case 'latency':
      return `p50 ${Math.round(r.p50Us)} us, p99 ${Math.round(r.p99Us)} us, p99.9 ${Math.round(r.p999Us)} us (${r.samples} samples), ${gen}, lost ${r.lost}, dups ${r.dups}`;
    case 'connections':
      return `${r.connPerSec.toFixed(0)} conn/s, p99 ${r.p99Ms.toFixed(1)} ms, broker ${r.brokerCpuMsPerConn.toFixed(2)} ms CPU/conn, ${gen}${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}`;
    case 'memory':
      return `idle ${(r.idleRssKiB / 1024).toFixed(1)} MiB, later ${(r.settledRssKiB / 1024).toFixed(1)} MiB; ${r.steps.map((s) => `${s.clients} clients ${(s.rssKiB / 1024).toFixed(1)} MiB (${s.kibPerClient.toFixed(1)} KiB each, opened in ${(s.openMs / 1000).toFixed(1)} s, connect p99 ${s.connectP99Ms.toFixed(0)} ms)`).join('; ')}; ${r.brokerCpuMsPerConn.toFixed(2)} ms CPU/conn, ${gen}${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}`;
    default:
      return JSON.stringify(r);
  }
}

try {
  await main();
} catch (err) {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
}
await shutdown(process.exitCode ?? 0);
