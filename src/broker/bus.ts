/**
 * The message bus between publishers and the broker's delivery: an MQEmitter (our LocalEmitter in one
 * process; mqemitter-redis implements the same interface, so that replicas can later share one bus). Each broker
 * listens on `#` and delivers what comes by to its own subscribers; the emit callback says when every
 * listener has taken the message (for the local emitter: synchronously delivered to the sessions).
 */
import type mqemitter from 'mqemitter';
import { LocalEmitter } from './local-emitter.js';
import type { Message } from './message.js';

/** What travels on the bus: the message, and whether any subscriber took it (filled by the listener). */
export interface BusEnvelope {
  topic: string;
  message: Message;
  matched: boolean;
}

type MQEmitter = mqemitter.MQEmitter;

export class MessageBus {
  private readonly emitter: MQEmitter;

  constructor(deliver: (message: Message) => boolean, emitter?: MQEmitter) {
    this.emitter = emitter ?? new LocalEmitter();
    this.emitter.on('#', (packet, done) => {
      const envelope = packet as BusEnvelope;
      if (deliver(envelope.message)) envelope.matched = true;
      done();
    });
  }

  publish(message: Message, done?: (matched: boolean) => void): void {
    const envelope: BusEnvelope = { topic: message.topic, message, matched: false };
    if (done === undefined) this.emitter.emit(envelope);
    else this.emitter.emit(envelope, () => done(envelope.matched));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.emitter.close(() => resolve()));
  }
}
