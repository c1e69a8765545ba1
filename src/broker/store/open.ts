/**
 * Choosing and opening the broker's store from the configuration: LevelDB in `location` when persistence
 * is on (created with mode 0700; a database held by another process, or written by a newer version, is
 * refused with a message that says so), nothing but memory when it is off.
 */
import type { Logger } from '../../log.js';
import { LevelStore } from './level.js';
import { MemoryStore } from './memory.js';
import type { Store } from './store.js';

export interface StoreOptions {
  /** mosquitto's `persistence`. */
  enabled: boolean;
  /** mosquitto's `persistence_location`: the database directory. */
  location: string;
  /** Used as given (the caller names the component). */
  logger: Logger;
}

export async function openStore(options: StoreOptions): Promise<Store> {
  const { enabled, location, logger } = options;
  if (!enabled) {
    logger.info({ persistence: 'memory' }, 'persistence off: sessions and retained messages live in memory only');
    return new MemoryStore();
  }
  const store = await LevelStore.open(location, logger);
  logger.info({ persistence: 'level', location }, 'persistence on: sessions and retained messages are kept on disk');
  return store;
}
