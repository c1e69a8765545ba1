/**
 * Helpers for the MQTT 5 PUBLISH/SUBSCRIBE and versions-mix tests: one broker per test file (our broker
 * in-process, TLS on a random loopback port), mqtt.js clients that record what they receive, a long-running
 * mosquitto_sub with a -F format, a paho-mqtt 1.6.1 MQTTv5 client driven over stdin
 * (paho_v5_pubsub.py), and a raw mqtt-packet socket for what no real client can send.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import mqtt, { type IClientOptions, type ISubscriptionMap, type MqttClient } from 'mqtt';
import mqttPacket, {
  type IConnectPacket,
  type IPublishPacket,
  type ISubackPacket,
  type ISubscribePacket,
  type IUnsubackPacket,
  type Packet,
} from 'mqtt-packet';
import type { Config } from '../../src/config/schema.js';
import { startTestBroker, USERS } from './broker.js';
import { waitFor } from './wait.js';

export { USERS, waitFor };

export interface PubSubBroker {
  port: number;
  /** CA certificate (PEM) and its file, for clients that verify the broker. */
  ca: string;
  caFile: string;
  /** Everything the broker logged so far (for failure messages). */
  logs(): string;
  close(): Promise<void>;
}

export interface PubSubBrokerOptions {
  /** mosquitto-style ACL file text. */
  acl?: string;
  /** Config keys (src/config/schema.ts) on top of the harness defaults. */
  config?: Partial<Config>;
}

/** Our broker with the harness users (cam, bob) on a TLS listener; close() also removes its directory. */
export async function startPubSubBroker(options: PubSubBrokerOptions = {}): Promise<PubSubBroker> {
  const broker = await startTestBroker({
    ...(options.acl === undefined ? {} : { acl: options.acl }),
    ...(options.config === undefined ? {} : { config: options.config }),
  });
  return {
    port: broker.port,
    ca: broker.pki.ca.cert,
    caFile: broker.pki.caFile,
    logs: () => broker.logs.text(),
    close: async () => {
      await broker.close();
      await rm(broker.dir, { recursive: true, force: true });
    },
  };
}

let ids = 0;
/** A client id unique in this process (23 characters at most, so that MQTT 3.1 accepts it too). */
export function clientId(prefix: string): string {
  ids += 1;
  return `${prefix.slice(0, 10)}-${process.pid % 100000}-${ids}`;
}

export type User = keyof typeof USERS;

export interface Received {
  /** The topic as mqtt.js reports it (an alias resolved). */
  topic: string;
  payload: string;
  packet: IPublishPacket;
}

/** An mqtt.js client that keeps every message and every packet it received. */
export interface Recorder {
  client: MqttClient;
  messages: Received[];
  packets: Packet[];
  /** The client's 'error' events (mqtt.js emits them for e.g. a server DISCONNECT with a reason code). */
  errors: Error[];
  /** Wait until `count` messages (optionally only those passing `filter`) arrived; returns them. */
  waitMessages(count: number, filter?: (m: Received) => boolean, timeoutMs?: number): Promise<Received[]>;
  /** Wait for a received packet of type `cmd` passing `filter`. */
  waitPacket<T extends Packet>(cmd: T['cmd'], filter?: (p: T) => boolean, timeoutMs?: number): Promise<T>;
  end(): Promise<void>;
}

export interface MqttJsOptions extends Partial<IClientOptions> {
  user?: User;
}

/**
 * Connect mqtt.js (default MQTT 5, user bob) to `broker` over TLS; it records from the first packet on
 * (messages a session kept arrive right after CONNACK). Rejects when the connection closes before CONNACK.
 */
export async function mqttjs(broker: PubSubBroker, options: MqttJsOptions = {}): Promise<Recorder> {
  const { user = 'bob', ...rest } = options;
  const client = mqtt.connect({
    host: '127.0.0.1',
    port: broker.port,
    protocol: 'mqtts',
    ca: broker.ca,
    servername: 'localhost',
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    protocolVersion: 5,
    username: user,
    password: USERS[user],
    clientId: clientId('js'),
    ...rest,
  });
  const rec = record(client);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('close', () => reject(new Error(`connection closed before CONNACK: ${rec.errors.map((e) => e.message).join('; ')}`)));
  });
  return rec;
}

export function record(client: MqttClient): Recorder {
  const messages: Received[] = [];
  const packets: Packet[] = [];
  const errors: Error[] = [];
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), packet }));
  client.on('packetreceive', (packet) => packets.push(packet));
  client.on('error', (err) => errors.push(err));
  return {
    client,
    messages,
    packets,
    errors,
    waitMessages: (count, filter = () => true, timeoutMs = 10_000) =>
      waitFor(
        `${count} message(s) on ${client.options.clientId}; got ${JSON.stringify(messages.map((m) => `${m.topic}:${m.payload}`))}`,
        () => {
          const matching = messages.filter(filter);
          return matching.length >= count ? matching : undefined;
        },
        timeoutMs,
        20,
      ),
    waitPacket: <T extends Packet>(cmd: T['cmd'], filter: (p: T) => boolean = () => true, timeoutMs = 10_000) =>
      waitFor(`a ${cmd} on ${client.options.clientId}`, () => packets.find((p): p is T => p.cmd === cmd && filter(p as T)), timeoutMs, 20),
    end: async () => {
      // A normal DISCONNECT; mqtt.js waits for its unacknowledged PUBLISHes first, so bound that wait.
      let timer: NodeJS.Timeout | undefined;
      const forced = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          client.end(true);
          resolve();
        }, 3000);
      });
      if (client.connected) await Promise.race([client.endAsync(), forced]);
      else client.end(true);
      clearTimeout(timer);
    },
  };
}

export interface AckResult {
  /** 'puback' for QoS 1, 'pubrec' for QoS 2. */
  cmd: 'puback' | 'pubrec';
  /** The reason code (0 when the packet carries none). */
  reasonCode: number;
  /** What mqtt.js's publish callback said (it fails on reason codes >= 0x80). */
  error: Error | undefined;
}

/** Publish at QoS 1 or 2 and return the broker's PUBACK / PUBREC reason code. */
export async function publishAck(
  rec: Recorder,
  topic: string,
  payload: string | Buffer,
  opts: { qos: 1 | 2; retain?: boolean; properties?: IPublishPacket['properties'] },
  timeoutMs = 10_000,
): Promise<AckResult> {
  const cmd = opts.qos === 1 ? 'puback' : 'pubrec';
  let sentId: number | undefined;
  const from = rec.packets.length;
  const onSend = (packet: Packet): void => {
    if (packet.cmd === 'publish' && sentId === undefined && packet.topic === topic) sentId = packet.messageId;
  };
  rec.client.on('packetsend', onSend);
  let error: Error | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      rec.client.publishAsync(topic, payload, opts),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`publish to ${topic} not acknowledged in ${timeoutMs} ms; errors: ${rec.errors.map((e) => e.message).join('; ')}`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    if (rec.packets.slice(from).every((p) => p.messageId !== sentId || p.cmd !== cmd)) throw err;
    error = err as Error;
  } finally {
    clearTimeout(timer);
    rec.client.off('packetsend', onSend);
  }
  const ack = rec.packets.slice(from).find((p) => p.cmd === cmd && p.messageId === sentId);
  if (ack === undefined) throw new Error(`no ${cmd} for message id ${sentId} (error: ${error?.message})`);
  return { cmd, reasonCode: (ack as { reasonCode?: number }).reasonCode ?? 0, error };
}

/** Race `promise` against a timer (for client calls that wait on the broker without a timeout). */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** SUBSCRIBE (one packet) and resolve with the SUBACK's reason codes, refusals (>= 0x80) included. */
export function subscribeCodes(rec: Recorder, topics: ISubscriptionMap, properties?: ISubscribePacket['properties']): Promise<number[]> {
  return within(
    `SUBACK for ${Object.keys(topics).join(', ')}`,
    new Promise<number[]>((resolve, reject) => {
      rec.client.subscribe(topics, properties === undefined ? {} : { properties }, (err, _granted, packet) => {
        const suback = packet ?? (err as { packet?: ISubackPacket } | null)?.packet;
        if (suback) resolve(suback.granted as number[]);
        else reject(err ?? new Error('no SUBACK'));
      });
    }),
  );
}

/** UNSUBSCRIBE and resolve with the UNSUBACK's reason codes (MQTT 5; empty for v3). */
export async function unsubscribeCodes(rec: Recorder, topics: string[]): Promise<number[]> {
  const packet = (await within(`UNSUBACK for ${topics.join(', ')}`, rec.client.unsubscribeAsync(topics))) as IUnsubackPacket | undefined;
  return packet?.granted ?? [];
}

/** The subscription identifiers a PUBLISH carries, sorted (mqtt-packet gives a number for one, an array for more). */
export function subscriptionIds(packet: IPublishPacket): number[] {
  const ids = packet.properties?.subscriptionIdentifier;
  return ids === undefined ? [] : [ids].flat().sort((a, b) => a - b);
}

/** Common mosquitto_pub / mosquitto_sub arguments for the broker's TLS listener. */
export function mosqArgs(broker: PubSubBroker, version: 'mqttv5' | 'mqttv311' | 'mqttv31', user: User = 'bob'): string[] {
  return ['-h', '127.0.0.1', '-p', String(broker.port), '-V', version, '--cafile', broker.caFile, '--insecure', '-u', user, '-P', USERS[user]];
}

/** Marks the lines mosquitto_sub prints for a message (-F), apart from its -d debug lines. */
export const MSG = 'MSG|';

/**
 * A mosquitto_sub that runs until stop() (or `lifetimeSeconds`), printing each message with `format`
 * (after the MSG marker). Resolves once the broker acknowledged its subscription.
 */
export interface MosquittoSub {
  /** Message lines (without the marker) received so far. */
  lines: string[];
  /** The reason codes / granted QoS its SUBACK carried. */
  granted: number[];
  output(): string;
  waitLines(count: number, timeoutMs?: number): Promise<string[]>;
  /** SIGKILL: the connection closes without DISCONNECT (its will is published). */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
}

export async function mosquittoSub(args: string[], format: string, lifetimeSeconds = 50): Promise<MosquittoSub> {
  const child: ChildProcessWithoutNullStreams = spawn(
    'stdbuf',
    ['-oL', 'mosquitto_sub', ...args, '-d', '-F', `${MSG}${format}`, '-W', String(lifetimeSeconds)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  const lines: string[] = [];
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) if (line.startsWith(MSG)) lines.push(line.slice(MSG.length));
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let alive = true;
  void exited.then(() => (alive = false));
  const granted = await waitFor(
    `mosquitto_sub to subscribe: ${out} ${err}`,
    () => {
      if (!alive) throw new Error(`mosquitto_sub exited: ${out} ${err}`);
      const m = /Subscribed \(mid: \d+\): ([\d, ]+)/.exec(out);
      return m?.[1] === undefined ? undefined : m[1].split(',').map((s) => Number(s.trim()));
    },
    15_000,
    20,
  );
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (alive) child.kill(sig);
    await exited;
  };
  return {
    lines,
    granted,
    output: () => `${out}\n${err}`,
    waitLines: (count, timeoutMs = 10_000) =>
      waitFor(`${count} line(s) from mosquitto_sub; got ${JSON.stringify(lines)}`, () => (lines.length >= count ? lines.slice() : undefined), timeoutMs, 20),
    kill: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
  };
}

export const PAHO_V5_SCRIPT = join(import.meta.dirname, 'paho_v5_pubsub.py');

export interface PahoEvent {
  event: 'connack' | 'suback' | 'unsuback' | 'message' | 'published' | 'sent' | 'disconnected';
  rc?: number;
  mid?: number;
  reason_codes?: number[];
  topic?: string;
  payload?: string;
  qos?: number;
  retain?: boolean;
  session_present?: boolean;
  properties?: Record<string, unknown>;
}

export interface PahoV5 {
  events: PahoEvent[];
  messages(): PahoEvent[];
  send(command: Record<string, unknown>): void;
  waitEvent(what: string, pred: (e: PahoEvent) => boolean, timeoutMs?: number): Promise<PahoEvent>;
  /** Subscribe and resolve with the SUBACK reason codes. */
  subscribe(topic: string, options?: { qos?: number; no_local?: boolean; retain_as_published?: boolean; retain_handling?: number; sub_id?: number }): Promise<number[]>;
  unsubscribe(topics: string[]): Promise<number[]>;
  /** SIGKILL: no DISCONNECT. */
  kill(): Promise<void>;
  /** Normal DISCONNECT, then wait for the exit. */
  close(): Promise<void>;
}

export interface PahoV5Options {
  user?: User;
  client_id?: string;
  clean_start?: boolean;
  session_expiry?: number;
  topic_alias_maximum?: number;
  will?: { topic: string; payload?: string; qos?: number; retain?: boolean; properties?: Record<string, unknown> };
  lifetime?: number;
}

/** Start the paho-mqtt 1.6.1 MQTTv5 client and wait for its CONNACK (it must be 0). */
export async function pahoV5(broker: PubSubBroker, options: PahoV5Options = {}): Promise<PahoV5> {
  const { user = 'bob', ...rest } = options;
  const config = {
    port: broker.port,
    cafile: broker.caFile,
    username: user,
    password: USERS[user],
    client_id: clientId('paho'),
    lifetime: 50,
    ...rest,
  };
  const child = spawn('/usr/bin/python3', [PAHO_V5_SCRIPT, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const events: PahoEvent[] = [];
  let stderr = '';
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) if (line.trim() !== '') events.push(JSON.parse(line) as PahoEvent);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let alive = true;
  const exited = new Promise<void>((resolve) =>
    child.once('close', () => {
      alive = false;
      resolve();
    }),
  );
  const waitEvent = (what: string, pred: (e: PahoEvent) => boolean, timeoutMs = 10_000): Promise<PahoEvent> =>
    waitFor(
      `paho ${what}; events ${JSON.stringify(events)} ${stderr}`,
      () => {
        const found = events.find(pred);
        if (found) return found;
        if (!alive) throw new Error('paho exited');
        return undefined;
      },
      timeoutMs,
      20,
    );
  const send = (command: Record<string, unknown>): void => {
    child.stdin.write(`${JSON.stringify(command)}\n`);
  };
  const acked = async (cmd: Record<string, unknown>, ack: 'suback' | 'unsuback'): Promise<number[]> => {
    const from = events.length;
    send(cmd);
    const sent = await waitEvent(`to send ${String(cmd.op)}`, (e) => e.event === 'sent' && events.indexOf(e) >= from);
    const reply = await waitEvent(ack, (e) => e.event === ack && e.mid === sent.mid && events.indexOf(e) >= from);
    return reply.reason_codes ?? [];
  };
  const connack = await waitEvent('CONNACK', (e) => e.event === 'connack');
  if (connack.rc !== 0) {
    child.kill('SIGKILL');
    throw new Error(`paho v5 refused: ${JSON.stringify(connack)}`);
  }
  return {
    events,
    messages: () => events.filter((e) => e.event === 'message'),
    send,
    waitEvent,
    subscribe: (topic, opts = {}) => acked({ op: 'subscribe', topic, ...opts }, 'suback'),
    unsubscribe: (topics) => acked({ op: 'unsubscribe', topics }, 'unsuback'),
    kill: async () => {
      if (alive) child.kill('SIGKILL');
      await exited;
    },
    close: async () => {
      if (alive) {
        send({ op: 'disconnect' });
        child.stdin.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/** A raw MQTT connection over TLS (mqtt-packet), for packets a real client refuses to send. */
export interface RawClient {
  socket: TLSSocket;
  packets: Packet[];
  closed: Promise<void>;
  isClosed(): boolean;
  send(packet: Packet): void;
  waitPacket<T extends Packet>(cmd: T['cmd'], filter?: (p: T) => boolean, timeoutMs?: number): Promise<T>;
  destroy(): void;
}

export async function rawConnect(
  broker: PubSubBroker,
  connect: Partial<IConnectPacket> & { protocolVersion: 3 | 4 | 5 },
  user: User = 'bob',
): Promise<{ raw: RawClient; connack: Packet }> {
  const protocolVersion = connect.protocolVersion;
  const socket = tlsConnect({ host: '127.0.0.1', port: broker.port, ca: broker.ca, servername: 'localhost' });
  const parser = mqttPacket.parser({ protocolVersion });
  const packets: Packet[] = [];
  parser.on('packet', (p) => packets.push(p));
  socket.on('data', (d: Buffer) => parser.parse(d));
  socket.on('error', () => undefined);
  let closed = false;
  const closedP = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  const raw: RawClient = {
    socket,
    packets,
    closed: closedP,
    isClosed: () => closed,
    send: (packet) => socket.write(mqttPacket.generate(packet, { protocolVersion })),
    waitPacket: <T extends Packet>(cmd: T['cmd'], filter: (p: T) => boolean = () => true, timeoutMs = 10_000) =>
      waitFor(`a raw ${cmd}; got ${JSON.stringify(packets.map((p) => p.cmd))}`, () => packets.find((p): p is T => p.cmd === cmd && filter(p as T)), timeoutMs, 20),
    destroy: () => socket.destroy(),
  };
  raw.send({
    cmd: 'connect',
    clientId: clientId('raw'),
    protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
    clean: true,
    keepalive: 60,
    username: user,
    password: Buffer.from(USERS[user]),
    ...connect,
  } as IConnectPacket);
  const connack = await raw.waitPacket('connack');
  return { raw, connack };
}

/** Wait `ms` to show that nothing (more) arrives; bounded, no timing threshold on the broker. */
export function settle(ms = 500): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
