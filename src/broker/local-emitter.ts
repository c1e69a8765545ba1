/**
 * The bus of a single broker process: an MQEmitter (the interface mqemitter and mqemitter-redis share),
 * written for how the broker uses it. mqemitter splits and matches every message's topic against its
 * listeners' patterns in a qlobber trie and runs the listeners through fastparallel, work that is wasted when
 * the only listener is the broker's own on `#`, as in a single process. Here a `#` listener takes every message at
 * once (with no `$` exception: the broker's own listener must see `$SYS` too), other patterns are matched
 * with the broker's topic matcher, and `emit`'s callback runs when every listener called its `done`.
 * Replicas that share a bus use mqemitter-redis instead, through the same interface.
 */
import type mqemitter from 'mqemitter';
import { compileFilter } from './topics.js';

type Listener = (message: mqemitter.Message, done: () => void) => void;
interface Entry {
  topic: string;
  listener: Listener;
  matches: ((topic: string) => boolean) | undefined;
}

const noop = (): void => undefined;

export class LocalEmitter implements mqemitter.MQEmitter {
  current = 0;
  concurrent = 0;
  private entries: Entry[] = [];
  private closed = false;

  on(topic: string, listener: Listener, callback?: () => void): this {
    this.entries = [...this.entries, { topic, listener, matches: topic === '#' ? undefined : compileFilter(topic) }];
    if (callback) setImmediate(callback);
    return this;
  }

  removeListener(topic: string, listener: Listener, callback?: () => void): void {
    this.entries = this.entries.filter((e) => e.topic !== topic || e.listener !== listener);
    if (callback) setImmediate(callback);
  }

  emit(message: mqemitter.Message, callback?: (error?: Error) => void): void {
    if (this.closed) {
      callback?.(new Error('the message bus is closed'));
      return;
    }
    const entries = this.entries;
    const done = callback ?? noop;
    if (entries.length === 1 && entries[0]!.matches === undefined) {
      entries[0]!.listener(message, done);
      return;
    }
    let left = 1;
    const one = (): void => {
      if (--left === 0) done();
    };
    for (const e of entries) {
      if (e.matches !== undefined && !e.matches(message.topic)) continue;
      left += 1;
      e.listener(message, one);
    }
    one();
  }

  close(callback: () => void): void {
    this.closed = true;
    setImmediate(callback);
  }
}
