// One MQTT client connection of the load generator, on a raw net/tls socket.
import net from 'node:net';
import tls from 'node:tls';
import { PacketReader, encodeConnect, encodeSubscribe, DISCONNECT, V311 } from './wire.js';

// One SecureContext per CA: tls.connect({ ca }) would parse the CA and build a fresh context on every call,
// which costs the generator more than the handshake itself.
const contexts = new Map();
function secureContextFor(ca) {
  let ctx = contexts.get(ca);
  if (ctx === undefined) {
    ctx = tls.createSecureContext({ ca });
    contexts.set(ca, ctx);
  }
  return ctx;
}

/**
 * target: { transport: 'tls' | 'tcp', host, port, ca, servername }. With `onread(n, buf)`, incoming bytes go
 * straight to it (net's `onread`: no stream machinery, no 'data' events); buf is reused after the call.
 */
export function openSocket(target, onread) {
  const options = { host: target.host, port: target.port, noDelay: true };
  if (onread !== undefined) options.onread = { buffer: readBuffer, callback: onread };
  const socket = target.transport === 'tls'
    ? tls.connect({ ...options, secureContext: secureContextFor(target.ca), servername: target.servername, rejectUnauthorized: target.ca !== undefined })
    : net.connect(options);
  socket.setNoDelay(true);
  return socket;
}

const noop = () => undefined;

// Subscribers of throughput runs pause between reads (see coalesceReads), after a read smaller than this.
const COALESCE_BELOW_BYTES = 4096;
const pausedReaders = new Set();
let resumeTimer = null;
function resumeReaders() {
  resumeTimer = null;
  for (const c of pausedReaders) if (!c.closed) c.socket.resume();
  pausedReaders.clear();
}
// One read buffer for every socket of this process: reads are handled one at a time, synchronously.
const readBuffer = Buffer.allocUnsafe(256 * 1024);

export class Client {
  /** credentials: { clientId, username, password, keepalive, version (4: MQTT 3.1.1, the default; 5: MQTT 5) } */
  constructor(target, credentials) {
    this.target = target;
    this.credentials = credentials;
    this.version = credentials.version ?? V311;
    this.socket = null;
    this.reader = new PacketReader(this, this.version);
    /** MQTT 5: the CONNACK's properties (receiveMaximum, subscriptionIdentifiersAvailable, ...); else null. */
    this.connackProperties = null;
    this.onPublish = noop;
    this.onPuback = noop;
    this.onChunk = noop;
    this.onClose = noop;
    this.pendingConnack = null;
    this.pendingSuback = null;
    this.closed = false;
    this.error = null;
    this.flushScheduled = false;
    /**
     * 0, or milliseconds to pause after each read: a broker that sends one small TLS record per message
     * (mosquitto) would otherwise wake the generator for a few records at a time, and reading would cost
     * the generator about as much as sending costs the broker. For throughput runs only.
     */
    this.coalesceReads = 0;
    this.flush = () => {
      this.flushScheduled = false;
      this.onChunk();
    };
  }

  /** Resolves with the milliseconds from the TCP connect call to CONNACK (accepted); rejects otherwise. */
  connect(timeoutMs = 20_000) {
    return new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      // Node's TLS layer delivers one read per TLS record, and mosquitto sends a record per packet: reading
      // through onread instead of 'data' events halves what a delivery costs the generator. Replies
      // (PUBACKs) and refills (publishers) happen once per event-loop turn, after all that has arrived.
      const socket = openSocket(this.target, (n, buf) => {
        this.reader.push(buf, n);
        if (!this.flushScheduled) {
          this.flushScheduled = true;
          setImmediate(this.flush);
        }
        if (this.coalesceReads > 0 && n < COALESCE_BELOW_BYTES) {
          // Leave the socket alone for a moment: the next read then takes many packets in one syscall.
          // A read that already brought a batch (a broker that writes many packets at once) needs no pause.
          pausedReaders.add(this);
          if (resumeTimer === null) resumeTimer = setTimeout(resumeReaders, this.coalesceReads);
          return false;
        }
        return true;
      });
      this.socket = socket;
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`no CONNACK within ${timeoutMs} ms (${this.credentials.clientId})`)), timeoutMs);
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      this.pendingConnack = (rc) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (rc !== 0) {
          socket.destroy();
          reject(new Error(`CONNACK return code ${rc} (0x${rc.toString(16)}) for ${this.credentials.clientId}`));
          return;
        }
        resolve(Number(process.hrtime.bigint() - started) / 1e6);
      };
      socket.once(this.target.transport === 'tls' ? 'secureConnect' : 'connect', () => {
        socket.write(encodeConnect(this.credentials));
      });
      socket.on('error', (err) => {
        this.error = err;
        fail(err);
      });
      socket.on('close', () => {
        this.closed = true;
        fail(new Error(`connection closed before CONNACK (${this.credentials.clientId})`));
        if (this.pendingSuback !== null) this.pendingSuback(null);
        this.onClose();
      });
    });
  }

  /** Resolves with the granted QoS; MQTT 5 with a subscription identifier when `subscriptionId` > 0. */
  subscribe(topic, qos, subscriptionId = 0) {
    return new Promise((resolve, reject) => {
      this.pendingSuback = (codes) => {
        this.pendingSuback = null;
        if (codes === null) reject(new Error('connection closed before SUBACK'));
        else if (codes[0] >= 0x80) reject(new Error(`SUBSCRIBE ${topic} refused (0x${codes[0].toString(16)})`));
        else resolve(codes[0]);
      };
      this.socket.write(encodeSubscribe(1, topic, qos, this.version, subscriptionId));
    });
  }

  write(buf) {
    return this.socket.write(buf);
  }

  /** DISCONNECT, then close; resolves when the socket is closed (or after `ms`). */
  disconnect(ms = 2000) {
    if (this.socket === null || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, ms);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (this.socket.writable) this.socket.end(DISCONNECT);
      else this.socket.destroy();
    });
  }

  // PacketReader handler
  publish(buf, start, end, qos, id, dup, subscriptionId) {
    this.onPublish(buf, start, end, qos, id, dup, subscriptionId);
  }

  puback(id, reasonCode) {
    this.onPuback(id, reasonCode);
  }

  connack(rc, properties) {
    this.connackProperties = properties;
    if (this.pendingConnack !== null) {
      const f = this.pendingConnack;
      this.pendingConnack = null;
      f(rc);
    }
  }

  suback(_id, codes) {
    if (this.pendingSuback !== null) this.pendingSuback(codes);
  }
}
