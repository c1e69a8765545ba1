/**
 * Retained messages (MQTT 5 section 3.3.1.3): the last retained message of every topic, in memory and in
 * the store. A retained message with an empty payload deletes the topic's message; an expired one is no
 * longer given to new subscribers.
 */
import { isExpired, type Message } from './message.js';
import type { Store } from './store/store.js';
import { compileFilter } from './topics.js';

export class RetainedMessages {
  private readonly messages = new Map<string, Message>();

  constructor(private readonly store: Store) {}

  get size(): number {
    return this.messages.size;
  }

  /** At start-up, from the store. */
  restore(messages: Iterable<Message>): void {
    for (const m of messages) this.messages.set(m.topic, m);
  }

  /** Keep (or, with an empty payload, delete) the retained message of `message.topic`. */
  set(message: Message): void {
    if (message.payload.length === 0) {
      if (this.messages.delete(message.topic)) this.store.deleteRetained(message.topic);
      return;
    }
    // Only what a retained message is: no origin.
    const kept: Message = { topic: message.topic, payload: message.payload, qos: message.qos, retain: true };
    if (message.properties !== undefined) kept.properties = message.properties;
    if (message.expiresAt !== undefined) kept.expiresAt = message.expiresAt;
    this.messages.set(message.topic, kept);
    this.store.putRetained(kept);
  }

  /** The retained messages matching a filter (expired ones are dropped on the way). */
  match(filter: string, now: number): Message[] {
    const matches = compileFilter(filter);
    const found: Message[] = [];
    for (const [topic, message] of this.messages) {
      if (!matches(topic)) continue;
      if (isExpired(message, now)) {
        this.messages.delete(topic);
        this.store.deleteRetained(topic);
        continue;
      }
      found.push(message);
    }
    return found;
  }
}
