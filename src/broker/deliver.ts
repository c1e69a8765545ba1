/**
 * QoS 0 delivery without aedes' detours. For every message and subscriber, aedes 1.2's `deliver0` waits a
 * `setImmediate`, copies the packet once more, writes it through `write()`, which waits another
 * `setImmediate` before telling the emitter it is done: two event-loop iterations and half a dozen objects
 * per delivery, and a QoS 0 message reaches its subscriber one iteration after the turn that read it.
 * This `deliver0` makes the same checks (no-local, duplicates through overlapping subscriptions, the
 * broker's authorizeForward) and writes the PUBLISH into the connection's outbox at once (sent at the end
 * of the turn). The emitter is told "done" once per connection per turn for all of them (still
 * asynchronously: mqemitter and fastparallel are not re-entrant). Back-pressure is kept: when the
 * connection is full, the emitter is released only on 'drain' (or when aedes' drain timeout closes the
 * client). QoS 1/2 deliveries keep aedes' path (message ids, persistence); their downgrades come here.
 */
import type { Client } from 'aedes';
import type { Duplex } from 'node:stream';
import { writePacket } from './outbox.js';

interface DeliverablePacket {
  topic: string;
  payload: Buffer | string;
  retain?: boolean;
  dup?: boolean;
  clientId?: string;
  nl?: boolean;
  brokerId?: string;
  brokerCounter?: number;
}

interface ClientInternals {
  id: string | null;
  connected: boolean;
  connecting: boolean;
  conn: Duplex;
  duplicates: Record<string, number>;
  broker: { authorizeForward(client: unknown, packet: DeliverablePacket): DeliverablePacket | null | undefined };
  deliver0: (packet: DeliverablePacket, cb: () => void) => void;
  waitForDrain(callback: (err?: Error | null) => void): void;
}

export function leanDeliver0(client: Client): void {
  const c = client as unknown as ClientInternals;
  if (typeof c.deliver0 !== 'function' || typeof c.waitForDrain !== 'function' || typeof c.duplicates !== 'object') {
    throw new Error('aedes internals changed: client.deliver0/waitForDrain/duplicates are missing (check the aedes version)');
  }
  let done: (() => void)[] = [];
  const releaseAll = (): void => {
    const callbacks = done;
    done = [];
    for (const cb of callbacks) cb();
  };
  const later = (cb: () => void): void => {
    if (done.push(cb) === 1) setImmediate(releaseAll);
  };
  c.deliver0 = function deliverQoS0(packet: DeliverablePacket, cb: () => void): void {
    // [MQTT-3.8.3-3] no-local (MQTT 5) and duplicates through overlapping subscriptions, as aedes does.
    if (packet.clientId === c.id && packet.nl === true) return later(cb);
    if (!isNew(c, packet)) return later(cb);
    const toForward = c.broker.authorizeForward(c, packet);
    if (!toForward || !(c.connected || c.connecting)) return later(cb);
    const written = writePacket(c.conn, {
      cmd: 'publish',
      topic: toForward.topic,
      payload: toForward.payload,
      qos: 0,
      retain: toForward.retain === true,
      dup: toForward.dup === true,
    });
    if (written) return later(cb);
    // Full: hold this emitter slot until the connection drains, as aedes' write() does.
    c.waitForDrain(() => cb());
  };
}

/** aedes' dedupe: a message reaches a client once, however many of its subscriptions match. */
function isNew(client: ClientInternals, packet: DeliverablePacket): boolean {
  const id = packet.brokerId;
  if (!id) return true;
  const counter = packet.brokerCounter ?? 0;
  const seen = client.duplicates[id] ?? 0;
  if (seen >= counter) return false;
  client.duplicates[id] = counter;
  return true;
}
