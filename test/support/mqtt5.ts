/**
 * MQTT 5 helpers for the tests, for any broker on 127.0.0.1 (ours or mosquitto):
 * - connectV5 / refusedV5: mqtt.js 5 with `protocolVersion: 5`, giving the CONNACK packet itself (properties,
 *   reason code, reason string), also when the connection is refused;
 * - nextDisconnect: the DISCONNECT packet a broker sends to an mqtt.js client;
 * - RawMqtt: a socket speaking mqtt-packet, for what a real client cannot do (withhold acknowledgements,
 *   stay silent, exceed limits);
 * - runPahoV5 / spawnPahoV5: Debian's paho-mqtt 1.6.1 with MQTTv5 (test/support/paho_v5.py);
 * - mosquittoV5Args: mosquitto_pub/mosquitto_sub arguments with `-V mqttv5`.
 * The functions only connect where they are told; they never start or stop a broker.
 */
import { spawn } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket, { type IConnackPacket, type IConnectPacket, type IDisconnectPacket, type IPublishPacket, type Packet } from 'mqtt-packet';

/** Where to connect: TLS when `ca` is given (the server name is checked against `servername`), else plain TCP. */
export interface Endpoint {
  port: number;
  ca?: string | Buffer;
  servername?: string;
}

export type V5Options = Endpoint & Partial<IClientOptions>;

/** A refused CONNECT: the error carries the reason code and the CONNACK packet (with its reason string). */
export class ConnackError extends Error {
  override name = 'ConnackError';
  constructor(
    readonly reasonCode: number,
    readonly connack: IConnackPacket,
  ) {
    super(`CONNACK refused with reason code 0x${reasonCode.toString(16)}${connack.properties?.reasonString ? ` (${connack.properties.reasonString})` : ''}`);
  }
}

function clientOptions(options: V5Options): IClientOptions {
  const { port, ca, servername = 'localhost', ...rest } = options;
  return {
    host: '127.0.0.1',
    port,
    protocol: ca === undefined ? 'mqtt' : 'mqtts',
    ...(ca === undefined ? {} : { ca, servername, rejectUnauthorized: true }),
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    protocolVersion: 5,
    ...rest,
  };
}

/** A connected mqtt.js client, its CONNACK, and every PUBLISH it received since the connection began. */
export interface V5Connection {
  client: MqttClient;
  connack: IConnackPacket;
  /**
   * Live list of the PUBLISH packets received from the start, including those that arrive together with the
   * CONNACK (a resumed session's queued messages), which a listener added after connecting could miss.
   */
  received: IPublishPacket[];
}

/**
 * Connect with mqtt.js as an MQTT 5 client and resolve with the client and its CONNACK. A refusal rejects with
 * a ConnackError (reason code and the CONNACK); a close before any CONNACK rejects with a plain Error.
 */
export function connectV5(options: V5Options): Promise<V5Connection> {
  const client = mqtt.connect(clientOptions(options));
  const received: IPublishPacket[] = [];
  client.on('message', (_topic: string, _payload: Buffer, packet: IPublishPacket) => received.push(packet));
  return new Promise((resolve, reject) => {
    let connack: IConnackPacket | undefined;
    const onPacket = (packet: Packet): void => {
      if (packet.cmd === 'connack') connack = packet;
    };
    client.on('packetreceive', onPacket);
    const settle = (): void => {
      client.off('packetreceive', onPacket);
    };
    client.once('connect', (packet: IConnackPacket) => {
      settle();
      resolve({ client, connack: packet, received });
    });
    client.once('error', (err) => {
      settle();
      client.end(true);
      if (connack !== undefined) reject(new ConnackError(connack.reasonCode ?? connack.returnCode ?? -1, connack));
      else reject(err);
    });
    client.once('close', () => {
      settle();
      if (connack !== undefined && (connack.reasonCode ?? connack.returnCode ?? 0) !== 0) {
        reject(new ConnackError(connack.reasonCode ?? connack.returnCode ?? -1, connack));
      } else {
        reject(new Error('connection closed before CONNACK'));
      }
    });
  });
}

/** Connect with mqtt.js expecting a refusal; resolves with the refusing CONNACK (fails the test on success). */
export async function refusedV5(options: V5Options): Promise<IConnackPacket> {
  try {
    const { client } = await connectV5(options);
    await client.endAsync(true);
  } catch (err) {
    if (err instanceof ConnackError) return err.connack;
    throw err;
  }
  throw new Error('the connection was accepted, expected a refusal');
}

/** Resolve with the next DISCONNECT the broker sends to `client`; reject when the connection closes without one. */
export function nextDisconnect(client: MqttClient, timeoutMs = 10_000): Promise<IDisconnectPacket> {
  return handled(new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no DISCONNECT from the broker within ${timeoutMs} ms`));
    }, timeoutMs);
    const onDisconnect = (packet: IDisconnectPacket): void => {
      cleanup();
      resolve(packet);
    };
    const onClose = (): void => {
      // The DISCONNECT, when there was one, is handled before the socket's close event.
      setImmediate(() => {
        cleanup();
        reject(new Error('the connection closed without a DISCONNECT from the broker'));
      });
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      client.off('disconnect', onDisconnect);
      client.off('close', onClose);
    };
    client.on('disconnect', onDisconnect);
    client.on('close', onClose);
  }));
}

/**
 * Mark a promise that is awaited later as handled, so that a rejection while the test awaits something else
 * (it fails there) is not also reported as an unhandled rejection. The promise itself still rejects.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/**
 * Resolve with the first `count` PUBLISH packets `client` receives from now on (with their v5 properties);
 * rejects after `timeoutMs` naming what did arrive.
 */
export function collectPublishes(client: MqttClient, count: number, timeoutMs = 10_000): Promise<IPublishPacket[]> {
  const got: IPublishPacket[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`got ${got.length} of ${count} messages: ${got.map((p) => `${p.topic}:${String(p.payload)}`).join(', ')}`));
    }, timeoutMs);
    const onMessage = (_topic: string, _payload: Buffer, packet: IPublishPacket): void => {
      got.push(packet);
      if (got.length >= count) {
        clearTimeout(timer);
        client.off('message', onMessage);
        resolve(got);
      }
    };
    client.on('message', onMessage);
  });
}


/** Resolve once `client`'s connection is closed (by either side). */
export function closedClient(client: MqttClient, timeoutMs = 10_000): Promise<void> {
  return handled(new Promise((resolve, reject) => {
    if (!client.connected && client.stream?.destroyed) {
      resolve();
      return;
    }
    const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
    client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  }));
}

/** MQTT 5 reason codes the tests name. */
export const RC = {
  success: 0x00,
  disconnectWithWill: 0x04,
  noMatchingSubscribers: 0x10,
  malformedPacket: 0x81,
  protocolError: 0x82,
  unsupportedProtocolVersion: 0x84,
  clientIdNotValid: 0x85,
  badUserNameOrPassword: 0x86,
  notAuthorized: 0x87,
  serverShuttingDown: 0x8b,
  badAuthenticationMethod: 0x8c,
  keepAliveTimeout: 0x8d,
  sessionTakenOver: 0x8e,
  receiveMaximumExceeded: 0x93,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
  administrativeAction: 0x98,
} as const;

// ---------------------------------------------------------------------------------------------------------------
// A raw MQTT connection (mqtt-packet), for behaviour a real client cannot show.

export interface RawOptions extends Endpoint {
  /** Protocol level the parser expects (5 by default; use 4 for a v3.1.1 raw client). */
  protocolVersion?: 3 | 4 | 5;
}

export class RawMqtt {
  /** Every packet received, in order. */
  readonly received: Packet[] = [];
  /** Resolves when the socket has closed (by either side). */
  readonly closed: Promise<void>;
  /** A parse error of what the broker sent, if any. */
  parseError: Error | undefined;
  private isClosed = false;
  private readonly waiters = new Set<() => void>();
  private readonly taken = new Set<Packet>();

  private constructor(
    readonly socket: Socket,
    readonly protocolVersion: 3 | 4 | 5,
  ) {
    const parser = mqttPacket.parser({ protocolVersion });
    parser.on('packet', (packet: Packet) => {
      this.received.push(packet);
      this.wake();
    });
    parser.on('error', (err: Error) => {
      this.parseError = err;
      this.wake();
    });
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.on('error', () => {
      // a reset by the broker counts as closed; 'close' follows
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      }),
    );
  }

  /** Open a TCP (or TLS, with `ca`) connection; sends nothing. */
  static open(options: RawOptions): Promise<RawMqtt> {
    const version = options.protocolVersion ?? 5;
    return new Promise((resolve, reject) => {
      const socket: Socket =
        options.ca === undefined
          ? netConnect({ host: '127.0.0.1', port: options.port })
          : tlsConnect({ host: '127.0.0.1', port: options.port, ca: options.ca, servername: options.servername ?? 'localhost' });
      const ready = options.ca === undefined ? 'connect' : 'secureConnect';
      socket.setNoDelay(true);
      socket.once(ready, () => {
        socket.off('error', reject);
        resolve(new RawMqtt(socket, version));
      });
      socket.once('error', reject);
    });
  }

  /** Open a connection, send CONNECT (v5 unless `connect.protocolVersion` says otherwise) and wait for the CONNACK. */
  static async connect(options: RawOptions, connect: Partial<IConnectPacket> & { clientId: string }): Promise<{ raw: RawMqtt; connack: IConnackPacket }> {
    const protocolVersion = connect.protocolVersion ?? options.protocolVersion ?? 5;
    const raw = await RawMqtt.open({ ...options, protocolVersion });
    raw.send({
      cmd: 'connect',
      protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion,
      clean: true,
      keepalive: 60,
      ...connect,
    });
    const connack = await raw.next('connack');
    return { raw, connack };
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  send(packet: Packet): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.protocolVersion }));
  }

  /** Write bytes as they are (a packet with a hand-made header, say). */
  sendBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Received packets of one type. */
  all<C extends Packet['cmd']>(cmd: C): Extract<Packet, { cmd: C }>[] {
    return this.received.filter((p): p is Extract<Packet, { cmd: C }> => p.cmd === cmd);
  }

  /**
   * The oldest packet of type `cmd` not yet returned by next(), waiting for it if needed. Rejects when the
   * connection closes first or on timeout.
   */
  async next<C extends Packet['cmd']>(cmd: C, timeoutMs = 10_000): Promise<Extract<Packet, { cmd: C }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = this.received.find((q) => q.cmd === cmd && !this.taken.has(q));
      if (p !== undefined) {
        this.taken.add(p);
        return p as Extract<Packet, { cmd: C }>;
      }
      if (this.isClosed) throw new Error(`connection closed while waiting for ${cmd}; got ${this.summary()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${cmd} within ${timeoutMs} ms; got ${this.summary()}`);
      await this.nextPacketOr(left);
    }
  }

  /** Wait until `check` holds on the received packets (or the socket closes / time runs out). */
  async until(what: string, check: (received: Packet[]) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this.received)) {
      if (this.isClosed) throw new Error(`connection closed while waiting for ${what}; got ${this.summary()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${this.summary()}`);
      await this.nextPacketOr(left);
    }
  }

  /** Resolves when the next packet arrives (or the socket closes), or after `ms`. */
  private nextPacketOr(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const waiters = this.waiters;
      function done(): void {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      }
      waiters.add(done);
    });
  }

  /** Wait for the socket to close; rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closed,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms; got ${this.summary()}`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Close without DISCONNECT. */
  destroy(): void {
    this.socket.destroy();
  }

  /** The received packet types, for failure messages. */
  summary(): string {
    return (
      this.received
        .map((p) => (p.cmd === 'disconnect' || p.cmd === 'connack' ? `${p.cmd}(0x${((p as { reasonCode?: number }).reasonCode ?? (p as { returnCode?: number }).returnCode ?? 0).toString(16)})` : p.cmd))
        .join(', ') || 'nothing'
    );
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// paho-mqtt 1.6.1 (Debian) as an MQTT 5 client.

export const PAHO_V5_SCRIPT = join(import.meta.dirname, 'paho_v5.py');

/** Properties by paho's names without spaces: SessionExpiryInterval, UserProperty ([[k, v], ...]), ... */
export type PahoProperties = Record<string, string | number | (string | number)[][] | number[]>;

export interface PahoV5Args {
  host?: string;
  port: number;
  /** TLS with this CA file (the host name is not checked: the tests connect to 127.0.0.1). */
  cafile?: string;
  username?: string;
  password?: string;
  /** '' (the default) asks the broker to assign one. */
  client_id?: string;
  clean_start?: boolean;
  keepalive?: number;
  properties?: PahoProperties;
  will?: { topic: string; payload?: string; qos?: 0 | 1 | 2; retain?: boolean; properties?: PahoProperties };
  subscribe?: { topic: string; qos?: 0 | 1 | 2; no_local?: boolean; retain_as_published?: boolean; retain_handling?: 0 | 1 | 2; properties?: PahoProperties }[];
  /** Published in order once every subscription is acknowledged. */
  publish?: { topic: string; payload?: string; qos?: 0 | 1 | 2; retain?: boolean; properties?: PahoProperties }[];
  /** Keep to the server's Receive Maximum (default true; paho 1.6.1 by itself ignores it and sends up to 20). */
  honour_receive_maximum?: boolean;
  /** Messages to wait for before ending. */
  count?: number;
  /** Seconds to stay connected after the rest is done (0 by default). */
  hold?: number;
  /** Wait (up to `timeout`) until the broker closes the connection. */
  until_disconnected?: boolean;
  /**
   * How to end: 'disconnect' (DISCONNECT 0x00, the default), 'disconnect_with_will' (DISCONNECT 0x04), 'drop'
   * (close the socket without DISCONNECT, as a crash does).
   */
  end?: 'disconnect' | 'disconnect_with_will' | 'drop';
  /** Overall limit in seconds (default 10). */
  timeout?: number;
}

export interface PahoV5Message {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  properties: Record<string, unknown>;
}

export interface PahoV5Result {
  connack: { rc: number; reason: string; session_present: boolean; properties: Record<string, unknown> } | null;
  subscribed: number[] | null;
  published: { mid: number; rc: number | null; reason: string | null }[];
  received: PahoV5Message[];
  /** from_broker: a DISCONNECT packet from the broker (its reason code in rc); else a closed socket or our own DISCONNECT. */
  disconnect: { rc: number | null; reason: string | null; from_broker: boolean; properties: Record<string, unknown> } | null;
  error?: string;
}

/** One event line of a running paho_v5.py: connack, subscribed, published, message, disconnect, result. */
export type PahoV5Event = { event: string } & Record<string, unknown>;

export interface PahoV5Process {
  events: PahoV5Event[];
  /** Resolves with the first event named `name` (e.g. 'connack', 'subscribed'); rejects if the script ends first. */
  waitEvent(name: string, timeoutMs?: number): Promise<PahoV5Event>;
  /** Resolves with the final result once the script has ended. */
  done: Promise<{ code: number | null; result: PahoV5Result; stderr: string }>;
  /** SIGKILL (the connection drops without DISCONNECT). */
  kill(): void;
}

/** Start paho_v5.py with Debian's python3 (the only one with paho) and follow its event lines. */
export function spawnPahoV5(args: PahoV5Args): PahoV5Process {
  const child = spawn('/usr/bin/python3', ['-u', PAHO_V5_SCRIPT, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: PahoV5Event[] = [];
  const listeners = new Set<() => void>();
  let buffer = '';
  let stderr = '';
  let ended = false;
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line === '') continue;
      try {
        events.push(JSON.parse(line) as PahoV5Event);
      } catch {
        events.push({ event: 'unparsed', line });
      }
    }
    for (const l of [...listeners]) l();
  });
  const done = new Promise<{ code: number | null; result: PahoV5Result; stderr: string }>((resolve) => {
    child.on('close', (code) => {
      ended = true;
      for (const l of [...listeners]) l();
      const last = [...events].reverse().find((e) => e.event === 'result');
      const result = (last?.result as PahoV5Result | undefined) ?? {
        connack: null,
        subscribed: null,
        published: [],
        received: [],
        disconnect: null,
        error: `no result line; stdout events: ${JSON.stringify(events)}; stderr: ${stderr}`,
      };
      resolve({ code, result, stderr });
    });
  });
  const waitEvent = (name: string, timeoutMs = 15_000): Promise<PahoV5Event> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = events.find((e) => e.event === name);
        if (found) {
          finish();
          resolve(found);
          return true;
        }
        if (ended) {
          finish();
          reject(new Error(`paho_v5.py ended without '${name}': ${JSON.stringify(events)} ${stderr}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no '${name}' from paho_v5.py within ${timeoutMs} ms: ${JSON.stringify(events)} ${stderr}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        listeners.delete(onChange);
      };
      const onChange = (): void => {
        check();
      };
      if (!check()) listeners.add(onChange);
    });
  return {
    events,
    waitEvent,
    done,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Run paho_v5.py to its end; the exit code is 0 when the CONNACK was a success, 3 when refused. */
export function runPahoV5(args: PahoV5Args): Promise<{ code: number | null; result: PahoV5Result; stderr: string }> {
  return spawnPahoV5(args).done;
}

// ---------------------------------------------------------------------------------------------------------------
// mosquitto_pub / mosquitto_sub.

/** Arguments for mosquitto_pub/mosquitto_sub speaking MQTT 5 to 127.0.0.1:`port` (TLS with `caFile`). */
export function mosquittoV5Args(port: number, caFile?: string, user?: string, password?: string): string[] {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv5'];
  if (caFile !== undefined) args.push('--cafile', caFile, '--insecure'); // --insecure: skip the host name check only
  if (user !== undefined) args.push('-u', user);
  if (password !== undefined) args.push('-P', password);
  return args;
}
