/**
 * The durable store: a write-behind journal on LevelDB (the `level` package). The broker keeps its state
 * in memory and tells this store about every change; a change is queued at once (synchronously, in call
 * order) and written with the others queued before it in one `db.batch()` (group commit: while a batch is
 * written the next one accumulates, and every `flush()` caller in between shares it). A LevelDB batch is
 * atomic and batches are applied in order, so after a kill -9 the database holds a prefix of the calls,
 * and at least everything a resolved `flush()` covered (the log write reaches the OS before batch()
 * resolves; no fsync: surviving the process, not the machine, is the goal). A failed batch rejects the
 * flush() calls that waited for it and is retried with the next batch (after a pause), unless a later write
 * replaced its keys: the disk still converges to the calls, and the store goes on working.
 *
 * Key layout (format 1; values: codec.ts). `<id>` is the client id with '%' -> '%25' and ':' -> '%3A', so
 * `q:<id>:` holds exactly one client's keys; numbers are fixed-width lowercase hex, so key order is
 * numeric order:
 *   meta:format                 '1' (ASCII); a database from a newer format is refused
 *   s:<id>                      the session (StoredSession)
 *   q:<id>:<seq, 14 hex>        a queue entry (QueuedEntry)
 *   i:<id>:<packet id, 4 hex>   an inbound QoS 2 packet id (empty value)
 *   w:<id>                      the will (StoredWill)
 *   r:<topic>                   a retained message (the topic is the rest of the key, unescaped)
 *
 * What exists per client is tracked in memory (load() saw everything, every write since passed here), so
 * deleteSession() deletes exact keys in the same ordered stream instead of scanning, and a queue entry or
 * inbound id that is put and deleted before its batch is written (a fast subscriber's PUBACK) never
 * reaches the disk. A database without `meta:format` that holds aedes-persistence-level keys is imported
 * by load() (legacy-aedes.ts).
 */
import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import type { Logger } from '../../log.js';
import type { Message } from '../message.js';
import type { QueuedEntry, Store, StoreSnapshot, StoredSession, StoredWill } from './store.js';
import * as codec from './codec.js';
import { importAedesLegacy } from './legacy-aedes.js';

const FORMAT_KEY = 'meta:format';
const EMPTY = Buffer.alloc(0);

type Op = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

export const escapeId = (id: string): string => (/[%:]/.test(id) ? id.replace(/[%:]/g, (c) => (c === '%' ? '%25' : '%3A')) : id);
const unescapeId = (s: string): string => (s.includes('%') ? s.replace(/%25|%3A/g, (m) => (m === '%25' ? '%' : ':')) : s);
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');
const queueKey = (esc: string, seq: number): string => `q:${esc}:${hex(seq, 14)}`;
const incomingKey = (esc: string, packetId: number): string => `i:${esc}:${hex(packetId, 4)}`;

/** The writes that store a whole snapshot (an imported database). */
function snapshotOps(snapshot: StoreSnapshot): Op[] {
  const ops: Op[] = [];
  for (const { session, queue, incomingQoS2 } of snapshot.sessions) {
    const esc = escapeId(session.clientId);
    ops.push({ type: 'put', key: `s:${esc}`, value: codec.encodeSession(session) });
    for (const e of queue) ops.push({ type: 'put', key: queueKey(esc, e.seq), value: codec.encodeQueued(e) });
    for (const id of incomingQoS2) ops.push({ type: 'put', key: incomingKey(esc, id), value: EMPTY });
  }
  for (const m of snapshot.retained) ops.push({ type: 'put', key: `r:${m.topic}`, value: codec.encodeRetained(m) });
  for (const w of snapshot.wills) ops.push({ type: 'put', key: `w:${escapeId(w.clientId)}`, value: codec.encodeWill(w) });
  return ops;
}

/** The keys one client has in the database (or in a batch on its way there). */
interface ClientKeys {
  esc: string;
  session: boolean;
  will: boolean;
  seqs: Set<number>;
  incoming: Set<number>;
}

type Deferred = ReturnType<typeof deferred>;

function deferred() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined); // a batch nobody flushed for may fail: the failure is logged, not thrown
  return { promise, resolve, reject };
}

const DONE: Promise<void> = Promise.resolve();

export class LevelStore implements Store {
  readonly kind = 'level' as const;
  readonly #db: Level<string, Buffer>;
  readonly #logger: Logger;
  readonly #clients = new Map<string, ClientKeys>();
  /** Writes not yet handed to LevelDB: key -> value, or null for a delete (last one wins). */
  readonly #pending = new Map<string, Buffer | null>();
  /** Pending puts with nothing under them (not on disk, not in the batch being written). */
  readonly #fresh = new Set<string>();
  #scheduled = false;
  /** The batch being written. */
  #current: Deferred | undefined;
  /** What flush() callers wait on while writes are pending: settled by the batch that takes them. */
  #next: Deferred | undefined;
  /** Batches failed in a row (their writes are retried with the next batch). */
  #failures = 0;
  /** After a failure the next batch waits (100 ms, doubling up to 5 s) instead of spinning on a broken disk. */
  #retry: NodeJS.Timeout | undefined;
  #needsFormat: boolean;
  #loaded = false;
  #closed = false;

  private constructor(db: Level<string, Buffer>, readonly location: string, logger: Logger, needsFormat: boolean) {
    this.#db = db;
    this.#logger = logger;
    this.#needsFormat = needsFormat;
  }

  /** Opens (creating it, mode 0700) the database in `location`; refuses one from a newer format. */
  static async open(location: string, logger: Logger): Promise<LevelStore> {
    await mkdir(location, { recursive: true, mode: 0o700 });
    const db = new Level<string, Buffer>(location, { valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const why = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
      throw new Error(
        `cannot open the store database in ${location}: ${why}` +
          (/lock/i.test(why) ? ' (another broker process is using it; stop it first)' : ''),
        { cause: err },
      );
    }
    const raw = await db.get(FORMAT_KEY);
    const format = raw === undefined ? undefined : Number(raw.toString('latin1'));
    if (format !== undefined && !(Number.isInteger(format) && format >= 1 && format <= codec.FORMAT_VERSION)) {
      await db.close();
      throw new Error(
        Number.isInteger(format) && format > codec.FORMAT_VERSION
          ? `the store in ${location} was written by a newer version of the broker (format ${format}; this version reads format ${codec.FORMAT_VERSION}): run that version, or move the directory away to start empty`
          : `the store in ${location} has an unreadable format marker (${FORMAT_KEY} = ${JSON.stringify(raw?.toString('latin1'))}): move the directory away to start empty`,
      );
    }
    return new LevelStore(db, location, logger, format === undefined);
  }

  async load(): Promise<StoreSnapshot> {
    if (this.#loaded) throw new Error('LevelStore.load() may be called once');
    const started = performance.now();
    if (this.#needsFormat) await this.#initialise();
    this.#loaded = true;
    const sessions = new Map<string, { session?: StoredSession; queue: QueuedEntry[]; incomingQoS2: number[] }>();
    const entryOf = (id: string) => {
      let e = sessions.get(id);
      if (e === undefined) sessions.set(id, (e = { queue: [], incomingQoS2: [] }));
      return e;
    };
    const snapshot: StoreSnapshot = { sessions: [], retained: [], wills: [] };
    let unreadable = 0;
    for await (const [key, value] of this.#db.iterator()) {
      if (key === FORMAT_KEY) continue;
      try {
        const kind = key[1] === ':' ? key[0] : '';
        const sep = kind === 'q' || kind === 'i' ? key.lastIndexOf(':') : key.length;
        const id = unescapeId(key.slice(2, sep));
        if (kind === 's') {
          entryOf(id).session = codec.decodeSession(value);
          this.#client(id).session = true;
        } else if (kind === 'q') {
          const seq = Number.parseInt(key.slice(sep + 1), 16);
          entryOf(id).queue.push(codec.decodeQueued(value, seq));
          this.#client(id).seqs.add(seq);
        } else if (kind === 'i') {
          const packetId = Number.parseInt(key.slice(sep + 1), 16);
          entryOf(id).incomingQoS2.push(packetId);
          this.#client(id).incoming.add(packetId);
        } else if (kind === 'w') {
          snapshot.wills.push(codec.decodeWill(value, id));
          this.#client(id).will = true;
        } else if (kind === 'r') {
          snapshot.retained.push(codec.decodeRetained(value));
        } else {
          throw new codec.CorruptValueError('unknown key');
        }
      } catch (err) {
        unreadable += 1;
        this.#logger.error({ location: this.location, key, err: (err as Error).message }, 'store: skipped an unreadable record');
      }
    }
    let orphans = 0;
    for (const [clientId, e] of sessions) {
      if (e.session !== undefined) snapshot.sessions.push({ session: e.session, queue: e.queue, incomingQoS2: e.incomingQoS2 });
      else {
        // Queue entries or inbound ids without a session: nobody can use them (a will alone is fine).
        orphans += e.queue.length + e.incomingQoS2.length;
        for (const q of e.queue) this.deleteQueued(clientId, q.seq);
        for (const id of e.incomingQoS2) this.deleteIncoming(clientId, id);
      }
    }
    this.#logger.info(
      {
        location: this.location,
        sessions: snapshot.sessions.length,
        queued: snapshot.sessions.reduce((n, s) => n + s.queue.length, 0),
        incomingQoS2: snapshot.sessions.reduce((n, s) => n + s.incomingQoS2.length, 0),
        retained: snapshot.retained.length,
        wills: snapshot.wills.length,
        ...(unreadable > 0 ? { unreadable } : {}),
        ...(orphans > 0 ? { orphansDeleted: orphans } : {}),
        ms: Math.round(performance.now() - started),
      },
      'store loaded',
    );
    return snapshot;
  }

  /** A database without a format marker: empty (mark it), or written by aedes-persistence-level (import it). */
  async #initialise(): Promise<void> {
    const marker = Buffer.from(String(codec.FORMAT_VERSION));
    // The import, the removal of the old keys and the marker in one batch: a crash leaves the old database as it was.
    const write = (snapshot: StoreSnapshot, oldKeys: string[]) =>
      this.#db.batch([...oldKeys.map((key): Op => ({ type: 'del', key })), ...snapshotOps(snapshot), { type: 'put', key: FORMAT_KEY, value: marker }]);
    if (!(await importAedesLegacy(this.#db, this.location, this.#logger, write))) await this.#db.put(FORMAT_KEY, marker);
    this.#needsFormat = false;
  }

  putSession(session: StoredSession): void {
    const c = this.#client(session.clientId);
    this.#put(`s:${c.esc}`, codec.encodeSession(session), !c.session);
    c.session = true;
  }

  deleteSession(clientId: string): void {
    const c = this.#clients.get(clientId);
    if (c === undefined) return; // nothing of it on disk nor on its way there
    this.#clients.delete(clientId);
    if (c.session) this.#del(`s:${c.esc}`);
    if (c.will) this.#del(`w:${c.esc}`);
    for (const seq of c.seqs) this.#del(queueKey(c.esc, seq));
    for (const id of c.incoming) this.#del(incomingKey(c.esc, id));
  }

  putQueued(clientId: string, entry: QueuedEntry): void {
    const c = this.#client(clientId);
    const fresh = !c.seqs.has(entry.seq);
    if (fresh) c.seqs.add(entry.seq);
    this.#put(queueKey(c.esc, entry.seq), codec.encodeQueued(entry), fresh);
  }

  deleteQueued(clientId: string, seq: number): void {
    const c = this.#clients.get(clientId);
    if (c !== undefined && c.seqs.delete(seq)) this.#del(queueKey(c.esc, seq));
  }

  putIncoming(clientId: string, packetId: number): void {
    const c = this.#client(clientId);
    const fresh = !c.incoming.has(packetId);
    if (fresh) c.incoming.add(packetId);
    this.#put(incomingKey(c.esc, packetId), EMPTY, fresh);
  }

  deleteIncoming(clientId: string, packetId: number): void {
    const c = this.#clients.get(clientId);
    if (c !== undefined && c.incoming.delete(packetId)) this.#del(incomingKey(c.esc, packetId));
  }

  putRetained(message: Message): void {
    this.#put(`r:${message.topic}`, codec.encodeRetained(message), false);
  }

  deleteRetained(topic: string): void {
    this.#del(`r:${topic}`);
  }

  putWill(will: StoredWill): void {
    const c = this.#client(will.clientId);
    this.#put(`w:${c.esc}`, codec.encodeWill(will), !c.will);
    c.will = true;
  }

  deleteWill(clientId: string): void {
    const c = this.#clients.get(clientId);
    if (c === undefined || !c.will) return;
    c.will = false;
    this.#del(`w:${c.esc}`);
  }

  flush(): Promise<void> {
    if (this.#pending.size > 0) return (this.#next ??= deferred()).promise;
    return this.#current?.promise ?? this.#next?.promise ?? DONE;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.flush();
    } finally {
      clearTimeout(this.#retry);
      await this.#db.close();
    }
  }

  #client(clientId: string): ClientKeys {
    let c = this.#clients.get(clientId);
    if (c === undefined) {
      c = { esc: escapeId(clientId), session: false, will: false, seqs: new Set(), incoming: new Set() };
      this.#clients.set(clientId, c);
    }
    return c;
  }

  #writable(): void {
    if (this.#closed) throw new Error(`write to the store in ${this.location} after close()`);
    if (!this.#loaded) throw new Error(`write to the store in ${this.location} before load(): what it holds is not known yet`);
  }

  #put(key: string, value: Buffer, fresh: boolean): void {
    this.#writable();
    if (fresh && !this.#pending.has(key)) this.#fresh.add(key);
    this.#pending.set(key, value);
    this.#schedule();
  }

  #del(key: string): void {
    this.#writable();
    if (this.#fresh.delete(key)) this.#pending.delete(key);
    else this.#pending.set(key, null);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#current !== undefined || this.#retry !== undefined) return;
    this.#scheduled = true;
    // Not at once: the rest of this event-loop turn (every socket that is readable) joins the batch.
    setImmediate(this.#write);
  }

  readonly #write = (): void => {
    this.#scheduled = false;
    if (this.#current !== undefined) return; // its completion writes what accumulated
    const batch = this.#next ?? deferred();
    this.#next = undefined;
    if (this.#pending.size === 0) return batch.resolve();
    const ops: Op[] = [];
    for (const [key, value] of this.#pending) ops.push(value === null ? { type: 'del', key } : { type: 'put', key, value });
    this.#pending.clear();
    this.#fresh.clear();
    this.#current = batch;
    this.#db.batch(ops).then(
      () => this.#settled(batch),
      (err: Error) => this.#settled(batch, err, ops),
    );
  };

  #settled(batch: Deferred, err?: Error, ops: Op[] = []): void {
    this.#current = undefined;
    if (err === undefined) {
      if (this.#failures > 0) this.#logger.info({ location: this.location, failedBatches: this.#failures }, 'store: writes succeed again');
      this.#failures = 0;
      batch.resolve();
      if (this.#pending.size > 0 || this.#next !== undefined) this.#write();
    } else {
      // Retried with the next batch (unless a later write replaced them): the disk converges to the calls.
      for (const op of ops) if (!this.#pending.has(op.key)) this.#pending.set(op.key, op.type === 'put' ? op.value : null);
      this.#failures += 1;
      const why = (err as { cause?: Error }).cause?.message ?? err.message;
      if (this.#failures === 1 || this.#failures % 100 === 0) {
        this.#logger.error({ location: this.location, changes: ops.length, failedBatches: this.#failures, err: why }, 'store: a batch of writes failed (retried with the next one)');
      }
      batch.reject(new Error(`writing ${ops.length} changes to the store in ${this.location} failed: ${why}`, { cause: err }));
      if (!this.#closed) {
        const delay = Math.min(5000, 100 * 2 ** Math.min(this.#failures - 1, 6));
        this.#retry = setTimeout(() => ((this.#retry = undefined), this.#write()), delay);
      }
    }
  }
}
