// Type declarations for dependencies that ship none.
declare module 'aedes-persistence-level/asyncPersistence.js' {
  import type { Level } from 'level';
  /** aedes 1.x async persistence on a level database (aedes-persistence-level 9). */
  export default class AsyncLevelPersistence {
    constructor(db: Level<string, Buffer>);
    setup(broker: unknown): Promise<void>;
    destroy(): Promise<void>;
    countRetained?(): Promise<number>;
  }
}
