/** Real MQTT clients for the tests: mqtt.js in-process, Debian's mosquitto_pub/sub and python3 paho-mqtt. */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';

export interface ConnectOptions extends Partial<IClientOptions> {
  port: number;
  ca?: string | Buffer;
  tls?: boolean;
  servername?: string;
  /** A TLS session (ticket) to resume; mqtt.js hands it to tls.connect. */
  session?: Buffer;
  /**
   * Keep messages that arrive before the test's first collectMessages/messagesDuring (default true). A
   * bystander that lives through thousands of messages and is never asked for them passes false.
   */
  keepEarly?: boolean;
}

/** Connect with mqtt.js; rejects with the CONNACK error (e.g. 'Connection refused: Not authorized'). */
export function connectMqtt(options: ConnectOptions): Promise<MqttClient> {
  const { port, ca, tls = true, servername = 'localhost', keepEarly = true, ...rest } = options;
  const client = mqtt.connect({
    host: '127.0.0.1',
    port,
    protocol: tls ? 'mqtts' : 'mqtt',
    ...(ca === undefined ? {} : { ca }),
    servername,
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    protocolVersion: 4,
    ...rest,
  });
  // Messages can arrive in the same read as CONNACK (a resumed session's queue), before the caller could
  // attach a listener: keep them for the first collectMessages/messagesDuring on this client.
  if (keepEarly) {
    const early: EarlyMessage[] = [];
    const keep = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
      early.push({ topic, payload, packet });
    };
    client.on('message', keep);
    earlyMessages.set(client, { early, keep });
  }
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
}

interface EarlyMessage {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}
const earlyMessages = new WeakMap<MqttClient, { early: EarlyMessage[]; keep: (topic: string, payload: Buffer, packet: IPublishPacket) => void }>();

/**
 * Messages that arrived before the first listener of a test, in order, at most `max`; each is handed out
 * once. Until all are taken, new messages keep queueing behind them (so that order holds).
 */
function takeEarly(client: MqttClient, max = Number.POSITIVE_INFINITY): EarlyMessage[] {
  const entry = earlyMessages.get(client);
  if (entry === undefined) return [];
  const taken = entry.early.splice(0, max);
  if (entry.early.length === 0) {
    earlyMessages.delete(client);
    client.off('message', entry.keep);
  }
  return taken;
}

/** Resolve with the first `count` messages received on `client` (topic, payload, qos, retain). */
export function collectMessages(
  client: MqttClient,
  count: number,
  timeoutMs = 10_000,
): Promise<{ topic: string; payload: string; qos: number; retain: boolean }[]> {
  const got: { topic: string; payload: string; qos: number; retain: boolean }[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${got.length} of ${count} messages: ${JSON.stringify(got)}`)), timeoutMs);
    const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
      got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
      if (got.length === count) {
        clearTimeout(timer);
        client.off('message', onMessage);
        resolve(got);
      }
    };
    for (const m of takeEarly(client, count)) onMessage(m.topic, m.payload, m.packet);
    if (got.length < count) client.on('message', onMessage);
  });
}

/** Wait `ms` and return the messages that arrived meanwhile (to show that something did NOT arrive). */
export async function messagesDuring(client: MqttClient, ms: number): Promise<string[]> {
  return (await publishesDuring(client, ms)).map((p) => `${p.topic}:${p.payload.toString()}`);
}

/** Wait `ms` and return the PUBLISH packets that arrived meanwhile (with their v5 properties). */
export function publishesDuring(client: MqttClient, ms: number): Promise<IPublishPacket[]> {
  const got: IPublishPacket[] = takeEarly(client).map((m) => m.packet);
  const onMessage = (_topic: string, _payload: Buffer, packet: IPublishPacket): void => {
    got.push(packet);
  };
  client.on('message', onMessage);
  return new Promise((resolve) =>
    setTimeout(() => {
      client.off('message', onMessage);
      resolve(got);
    }, ms),
  );
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

/** Common mosquitto_pub/mosquitto_sub arguments for our TLS listener. */
export function mosquittoArgs(port: number, caFile: string | undefined, user?: string, password?: string): string[] {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311'];
  if (caFile !== undefined) args.push('--cafile', caFile, '--insecure'); // --insecure: skip the host name check only
  if (user !== undefined) args.push('-u', user);
  if (password !== undefined) args.push('-P', password);
  return args;
}

/**
 * Start mosquitto_sub and resolve once it has subscribed (its -d output says SUBACK); `done` resolves with
 * its output lines after it received `count` messages (-C) or timed out (-W).
 */
export async function startMosquittoSub(
  args: string[],
  count: number,
  timeoutSeconds = 15,
): Promise<{ done: Promise<{ code: number | null; lines: string[]; stderr: string }> }> {
  const child = spawn('stdbuf', ['-oL', 'mosquitto_sub', ...args, '-d', '-C', String(count), '-W', String(timeoutSeconds)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const subscribed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mosquitto_sub did not subscribe: ${out} ${err}`)), timeoutSeconds * 1000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/SUBACK/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      if (!/SUBACK/.test(out)) reject(new Error(`mosquitto_sub exited before SUBACK: ${out} ${err}`));
    });
  });
  const done = new Promise<{ code: number | null; lines: string[]; stderr: string }>((resolve) => {
    // 'close', not 'exit': the last lines may still be in the pipe when the process has exited.
    child.on('close', (code) => {
      const lines = out.split('\n').filter((l) => l !== '' && !/^Client |^Subscribed|^\s/.test(l));
      resolve({ code, lines, stderr: err });
    });
  });
  await subscribed;
  return { done };
}

export const PAHO_SCRIPT = join(import.meta.dirname, 'paho_client.py');

/** Run the paho-mqtt script with Debian's python (the only one that has paho). */
export async function runPaho(args: Record<string, string | number | boolean>): Promise<{ code: number | null; result: Record<string, unknown>; stderr: string }> {
  const argv = [PAHO_SCRIPT, JSON.stringify(args)];
  const out = await run('/usr/bin/python3', argv, 30_000);
  let result: Record<string, unknown>;
  try {
    result = JSON.parse(out.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  } catch {
    result = { raw: out.stdout };
  }
  return { code: out.code, result, stderr: out.stderr };
}

/** SUBSCRIBE and return the granted QoS per topic (128 = refused); mqtt.js rejects the promise form on 128. */
export function subscribeGranted(client: MqttClient, topics: Record<string, { qos: 0 | 1 | 2 }>): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    client.subscribe(topics, (err, granted) => {
      const packet = (err as { packet?: { granted?: number[] } } | null)?.packet;
      if (packet?.granted) {
        const names = Object.keys(topics);
        resolve(Object.fromEntries(packet.granted.map((q, i) => [names[i], q])));
        return;
      }
      if (err) reject(err);
      else resolve(Object.fromEntries((granted ?? []).map((g) => [g.topic, g.qos])));
    });
  });
}
