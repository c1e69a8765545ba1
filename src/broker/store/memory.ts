/**
 * The store when persistence is off: the broker's in-memory state is all there is, so every write is a
 * no-op, `load()` finds nothing and `flush()` is already done. It costs the data path nothing: `flush()`
 * hands out one shared resolved promise instead of making one per call.
 */
import type { Store, StoreSnapshot } from './store.js';

const DONE: Promise<void> = Promise.resolve();

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly location = undefined;

  async load(): Promise<StoreSnapshot> {
    return { sessions: [], retained: [], wills: [] };
  }

  putSession(): void {}
  deleteSession(): void {}
  putQueued(): void {}
  deleteQueued(): void {}
  putIncoming(): void {}
  deleteIncoming(): void {}
  putRetained(): void {}
  deleteRetained(): void {}
  putWill(): void {}
  deleteWill(): void {}

  flush(): Promise<void> {
    return DONE;
  }

  close(): Promise<void> {
    return DONE;
  }
}
