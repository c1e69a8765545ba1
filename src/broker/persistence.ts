/**
 * The broker's persistence: aedes-persistence-level on a level database under `persistenceLocation` when
 * persistence is on (retained messages, persistent sessions' subscriptions and their queued QoS 1/2
 * messages survive a restart), aedes' in-memory persistence otherwise.
 */
// Before anything that loads mqtt-packet (see quiet-debug.ts).
import './quiet-debug.js';
import { mkdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Level } from 'level';
import AsyncLevelPersistence from 'aedes-persistence-level/asyncPersistence.js';
import MemoryPersistence from 'aedes-persistence/asyncPersistence.js';
import type { Logger } from '../log.js';

type SessionClient = { id: string; clean?: boolean };


/**
 * Level persistence that keeps clean sessions off the disk. A clean session's state ends with its
 * connection, yet Aedes asks the persistence about it on every QoS 1/2 acknowledgement: a PUBACK to a
 * clean client looks up an outgoing packet that was never stored (Aedes does not store a clean client's
 * in-flight messages), and a clean client's inbound QoS 2 packets were written to disk and deleted again.
 * Measured: 38% of the broker's CPU in fan-in QoS 1 was that lookup. Here a clean client's inbound QoS 2
 * state lives in memory, and its acknowledgements touch the disk only when this connection was handed
 * packets from the disk (a previous persistent session's queue, replayed at CONNECT).
 */
class SessionAwareLevelPersistence extends AsyncLevelPersistence {
  readonly #memory = new MemoryPersistence();
  /**
   * Client ids that may have something on disk, by kind. Every CONNECT and disconnect asks LevelDB about
   * the client's stored subscriptions, queue, inbound QoS 2 packets and will (range scans and lookups);
   * for an id not in here (every camera that only ever connects clean) the answer is known to be empty.
   * Built from the keys at start-up, grown on every write; an id is dropped only where its kind is cleared.
   */
  readonly #onDisk = { subscriptions: new Set<string>(), outgoing: new Set<string>(), incoming: new Set<string>(), will: new Set<string>() };
  /** Clean clients that were given packets from the disk queue (they must clear them there). */
  readonly #replayedFromDisk = new WeakSet<SessionClient>();

  /** QoS 1/2 messages stored per client id (queued for an offline session, or in flight). */
  readonly #queued = new Map<string, number>();
  #dropped = 0;

  constructor(
    private readonly db: Level<string, Buffer>,
    /** mosquitto's max_queued_messages: 0 = unlimited. */
    private readonly maxQueued: number,
    private readonly logger: Logger,
  ) {
    super(db);
  }

  override async setup(broker: unknown): Promise<void> {
    await super.setup(broker);
    await this.#memory.setup(broker);
    // aedes-persistence-level 9 keys: `<kind>:<encodeURIComponent(id)>:...` (`will:<id>` has no tail).
    for (const kind of ['subscriptions', 'outgoing', 'incoming', 'will'] as const) {
      const prefix = `${kind}:`;
      for await (const key of this.db.keys({ gte: prefix, lt: `${prefix}\uffff` })) {
        const end = key.indexOf(':', prefix.length);
        const id = decodeURIComponent(key.slice(prefix.length, end < 0 ? undefined : end));
        this.#onDisk[kind].add(id);
        if (kind === 'outgoing') this.#queued.set(id, (this.#queued.get(id) ?? 0) + 1);
      }
    }
  }

  override async addSubscriptions(client: SessionClient, subs: unknown[]): Promise<void> {
    this.#onDisk.subscriptions.add(client.id);
    await super.addSubscriptions(client, subs);
  }

  override async cleanSubscriptions(client: SessionClient): Promise<void> {
    if (!this.#onDisk.subscriptions.has(client.id)) return;
    await super.cleanSubscriptions(client);
    this.#onDisk.subscriptions.delete(client.id);
  }

  override async outgoingEnqueue(sub: { clientId: string }, packet: unknown): Promise<void> {
    const id = sub.clientId;
    const queued = this.#queued.get(id) ?? 0;
    if (this.maxQueued > 0 && queued >= this.maxQueued) {
      // As mosquitto: beyond max_queued_messages new messages for that session are dropped.
      this.#dropped += 1;
      if (this.#dropped === 1 || this.#dropped % 1000 === 0) {
        this.logger.warn({ clientId: id, maxQueuedMessages: this.maxQueued, droppedSoFar: this.#dropped }, 'session queue full (max_queued_messages): message dropped for this client');
      }
      return;
    }
    this.#queued.set(id, queued + 1);
    this.#onDisk.outgoing.add(id);
    await super.outgoingEnqueue(sub, packet);
  }

  override async outgoingUpdate(client: SessionClient, packet: unknown): Promise<void> {
    // Aedes calls this for a clean client only while replaying the stored queue at CONNECT.
    if (client.clean === true) this.#replayedFromDisk.add(client);
    this.#onDisk.outgoing.add(client.id);
    await super.outgoingUpdate(client, packet);
  }

  override async outgoingClearMessageId(client: SessionClient, packet: unknown): Promise<unknown> {
    if (!this.#onDisk.outgoing.has(client.id)) return undefined;
    if (client.clean === true && !this.#replayedFromDisk.has(client)) return undefined;
    const cleared = await super.outgoingClearMessageId(client, packet);
    if (cleared !== undefined) {
      const left = (this.#queued.get(client.id) ?? 1) - 1;
      if (left > 0) this.#queued.set(client.id, left);
      else this.#queued.delete(client.id);
    }
    return cleared;
  }

  override outgoingStream(client: SessionClient): Readable {
    return this.#onDisk.outgoing.has(client.id) ? super.outgoingStream(client) : Readable.from([]);
  }

  override async incomingStorePacket(client: SessionClient, packet: unknown): Promise<void> {
    if (client.clean === true) return this.#memory.incomingStorePacket(client, packet);
    this.#onDisk.incoming.add(client.id);
    return super.incomingStorePacket(client, packet);
  }

  override async incomingGetPacket(client: SessionClient, packet: unknown): Promise<unknown> {
    return client.clean === true ? this.#memory.incomingGetPacket(client, packet) : super.incomingGetPacket(client, packet);
  }

  override async incomingDelPacket(client: SessionClient, packet: unknown): Promise<void> {
    return client.clean === true ? this.#memory.incomingDelPacket(client, packet) : super.incomingDelPacket(client, packet);
  }

  override async cleanIncoming(client: SessionClient): Promise<void> {
    // A clean session may follow a persistent one with the same client id: clear both.
    await this.#memory.cleanIncoming(client);
    if (!this.#onDisk.incoming.has(client.id)) return;
    await super.cleanIncoming(client);
    this.#onDisk.incoming.delete(client.id);
  }

  override async putWill(client: SessionClient, packet: unknown): Promise<void> {
    this.#onDisk.will.add(client.id);
    await super.putWill(client, packet);
  }

  override async getWill(client: SessionClient): Promise<unknown> {
    return this.#onDisk.will.has(client.id) ? super.getWill(client) : undefined;
  }

  override async delWill(client: SessionClient): Promise<unknown> {
    if (!this.#onDisk.will.has(client.id)) return undefined;
    const will = await super.delWill(client);
    this.#onDisk.will.delete(client.id);
    return will;
  }
}

export interface BrokerPersistence {
  /** What aedes gets as its `persistence` option; undefined = aedes' own memory persistence. */
  readonly aedesPersistence: unknown;
  readonly kind: 'level' | 'memory';
  readonly location?: string;
  close(): Promise<void>;
}

export async function openPersistence(
  enabled: boolean,
  location: string,
  logger: Logger,
  maxQueuedMessages = 0,
): Promise<BrokerPersistence> {
  if (!enabled) {
    logger.info({ persistence: 'memory' }, 'persistence off: sessions and retained messages live in memory only');
    return { aedesPersistence: undefined, kind: 'memory', close: async () => undefined };
  }
  await mkdir(location, { recursive: true, mode: 0o700 });
  const db = new Level<string, Buffer>(location, { valueEncoding: 'buffer' });
  try {
    await db.open();
  } catch (err) {
    const cause = (err as { cause?: Error }).cause;
    const why = cause?.message ?? (err as Error).message;
    throw new Error(
      `cannot open the persistence database in ${location}: ${why}` +
        (/lock/i.test(why) ? ' (another broker process is using it; stop it first)' : ''),
      { cause: err },
    );
  }
  const persistence = new SessionAwareLevelPersistence(db, maxQueuedMessages, logger);
  logger.info({ persistence: 'level', location }, 'persistence on: sessions and retained messages are kept on disk');
  let closed = false;
  return {
    aedesPersistence: persistence,
    kind: 'level',
    location,
    async close() {
      if (closed) return;
      closed = true;
      await persistence.destroy();
    },
  };
}
