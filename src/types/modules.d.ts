// Type declarations for dependencies that ship none.
declare module 'aedes-persistence-level/asyncPersistence.js' {
  import type { Level } from 'level';
  import type { Readable } from 'node:stream';
  /** aedes 1.x async persistence on a level database (aedes-persistence-level 9). */
  export default class AsyncLevelPersistence {
    constructor(db: Level<string, Buffer>);
    setup(broker: unknown): Promise<void>;
    destroy(): Promise<void>;
    outgoingUpdate(client: { id: string; clean?: boolean }, packet: unknown): Promise<void>;
    outgoingClearMessageId(client: { id: string; clean?: boolean }, packet: unknown): Promise<unknown>;
    incomingStorePacket(client: { id: string; clean?: boolean }, packet: unknown): Promise<void>;
    incomingGetPacket(client: { id: string; clean?: boolean }, packet: unknown): Promise<unknown>;
    incomingDelPacket(client: { id: string; clean?: boolean }, packet: unknown): Promise<void>;
    cleanIncoming(client: { id: string; clean?: boolean }): Promise<void>;
    addSubscriptions(client: { id: string; clean?: boolean }, subs: unknown[]): Promise<void>;
    cleanSubscriptions(client: { id: string; clean?: boolean }): Promise<void>;
    outgoingEnqueue(sub: { clientId: string }, packet: unknown): Promise<void>;
    outgoingStream(client: { id: string; clean?: boolean }): Readable;
    putWill(client: { id: string; clean?: boolean }, packet: unknown): Promise<void>;
    getWill(client: { id: string; clean?: boolean }): Promise<unknown>;
    delWill(client: { id: string; clean?: boolean }): Promise<unknown>;
  }
}

declare module 'aedes-persistence/asyncPersistence.js' {
  /** aedes' in-memory persistence (aedes-persistence 10). */
  export default class MemoryPersistence {
    setup(broker: unknown): Promise<void>;
    incomingStorePacket(client: { id: string }, packet: unknown): Promise<void>;
    incomingGetPacket(client: { id: string }, packet: unknown): Promise<unknown>;
    incomingDelPacket(client: { id: string }, packet: unknown): Promise<void>;
    cleanIncoming(client: { id: string }): Promise<void>;
  }
}
