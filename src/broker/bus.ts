/**
 * The message bus between publishers and the broker's delivery: an MQEmitter, the interface that
 * mqemitter-redis also implements, so that replicas of the broker can later share one bus. Each broker
 * listens on `#` and delivers what comes by to its own subscribers; the emit callback says when every
 * listener has taken the message (for the local emitter: synchronously delivered to the sessions).
 */
import mqemitter from 'mqemitter';
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
    // matchEmptyLevels: [MQTT-4.7.1-3] `a/#` matches `a/` and `a//b`.
    this.emitter = emitter ?? mqemitter({ matchEmptyLevels: true });
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
