/**
 * The broker's persistence: aedes-persistence-level on a level database under `persistenceLocation` when
 * persistence is on (retained messages, persistent sessions' subscriptions and their queued QoS 1/2
 * messages survive a restart), aedes' in-memory persistence otherwise.
 */
import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import AsyncLevelPersistence from 'aedes-persistence-level/asyncPersistence.js';
import type { Logger } from '../log.js';

export interface BrokerPersistence {
  /** What aedes gets as its `persistence` option; undefined = aedes' own memory persistence. */
  readonly aedesPersistence: unknown;
  readonly kind: 'level' | 'memory';
  readonly location?: string;
  close(): Promise<void>;
}

export async function openPersistence(enabled: boolean, location: string, logger: Logger): Promise<BrokerPersistence> {
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
  const persistence = new AsyncLevelPersistence(db);
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
