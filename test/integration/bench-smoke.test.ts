import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const hasMosquitto = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].some((p) => existsSync(p));

interface ThroughputResult {
  version: number;
  window: number | null;
  receiveMaximum: number | null;
  refusedAcks: number;
  badAcks: number;
  delivered: number;
  deliveredPerSec: number;
  expected: number;
  lost: number;
  dups: number;
  unacked: number;
  generatorCpu: number;
  brokerCpu: number;
}

interface BenchReport {
  brokers: string[];
  failures: unknown[];
  scenarios: { name: string; results: Record<string, ThroughputResult[]>; summary: Record<string, Record<string, { median: number }>> }[];
}

function runBench(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(root, 'bench', 'run.js')], { cwd: root, env: { ...process.env, ...env } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('the bench (quick mode)', () => {
  it.skipIf(!hasMosquitto)(
    'runs fan-in QoS 1 with MQTT 3.1.1 and MQTT 5 clients against our broker (dist/cli.js) and mosquitto: messages delivered, none lost, JSON written',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mab-bench-smoke-'));
      try {
        const { code, output } = await runBench({ BENCH_QUICK: '1', BENCH_RUNS: '1', BENCH_SCENARIOS: 'fanin-qos1,fanin-qos1-v5', BENCH_RESULTS_DIR: dir });
        expect(code, output).toBe(0);
        expect(readdirSync(dir).some((f) => /^bench-.+\.json$/.test(f)), output).toBe(true);
        const report = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as BenchReport;
        // The default set: ours, mosquitto and the Node floor (which takes no part in fan-in).
        expect(report.brokers).toEqual(['ours', 'mosquitto', 'floor']);
        expect(report.failures).toEqual([]);
        for (const [name, broker] of ['fanin-qos1', 'fanin-qos1-v5'].flatMap((n) => [[n, 'ours'], [n, 'mosquitto']] as const)) {
          const scenario = report.scenarios.find((s) => s.name === name);
          expect(scenario, name).toBeDefined();
          const runs = scenario?.results[broker] ?? [];
          expect(runs, `${name} ${broker}`).toHaveLength(1);
          const r = runs[0] as ThroughputResult;
          if (name === 'fanin-qos1-v5') {
            // Both announce Receive Maximum = max_inflight_messages of the generated conf (100), and the
            // generator keeps its window within it; every PUBACK (reason code or not) is a success.
            expect(r.version, broker).toBe(5);
            expect(r.receiveMaximum, `${broker}: Receive Maximum in CONNACK`).toBe(100);
            expect(r.window, broker).toBe(100);
            expect({ refusedAcks: r.refusedAcks, badAcks: r.badAcks }, broker).toEqual({ refusedAcks: 0, badAcks: 0 });
          }
          expect(r.delivered, broker).toBeGreaterThan(0);
          expect(r.deliveredPerSec, broker).toBeGreaterThan(0);
          expect(r.expected, broker).toBeGreaterThan(0);
          expect(r.lost, `${broker}: QoS 1 messages lost`).toBe(0);
          expect(r.unacked, `${broker}: PUBLISHes never acknowledged`).toBe(0);
          expect(r.generatorCpu, broker).toBeGreaterThan(0);
          expect(Number.isFinite(r.brokerCpu), broker).toBe(true);
          expect(scenario?.summary.deliveredPerSec?.[broker]?.median, `${name} ${broker}`).toBeGreaterThan(0);
        }
        expect(output).toMatch(/ours\/mosquitto/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    120_000,
  );

  it('measures the Node TLS floor (bench/node-tls-floor.js) on connections, idle clients and relayed latency, and skips it elsewhere', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mab-bench-smoke-'));
    try {
      const { code, output } = await runBench({
        BENCH_QUICK: '1',
        BENCH_RUNS: '1',
        BENCH_BROKERS: 'floor',
        BENCH_SCENARIOS: 'connect-seq,memory,fanin-qos0,latency-qos1',
        BENCH_CONNECT_SECONDS: '0.5',
        BENCH_RESULTS_DIR: dir,
      });
      expect(code, output).toBe(0);
      const report = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as {
        failures: unknown[];
        scenarios: { name: string; results: Record<string, Record<string, number>[]> }[];
      };
      expect(report.failures).toEqual([]);
      const connect = report.scenarios.find((s) => s.name === 'connect-seq')?.results.floor?.[0];
      expect(connect?.connPerSec).toBeGreaterThan(0);
      expect(connect?.errors).toBe(0);
      const memory = report.scenarios.find((s) => s.name === 'memory')?.results.floor?.[0];
      expect(memory?.['clients@100']).toBe(100);
      expect(report.scenarios.find((s) => s.name === 'fanin-qos0')?.results.floor).toEqual([]);
      // The relay: SUBACK, every PUBLISH forwarded once, each QoS 1 PUBLISH acknowledged.
      const latency = report.scenarios.find((s) => s.name === 'latency-qos1')?.results.floor?.[0];
      expect(latency?.samples).toBeGreaterThan(0);
      expect(latency?.sent).toBeGreaterThan(0);
      expect({ lost: latency?.lost, dups: latency?.dups, unacked: latency?.unacked }).toEqual({ lost: 0, dups: 0, unacked: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
