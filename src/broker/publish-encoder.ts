/**
 * Builds the PUBLISH that one subscriber gets for a message: its protocol version, the QoS and retain flag
 * granted to it, the expiry interval left, the topic alias it knows, its subscription identifiers.
 *
 * In a fan-out most subscribers get the very same bytes (same version family, QoS 0, same retain flag,
 * no per-subscriber property): those are encoded once per message and the one Buffer is written to every
 * outbox. Everything per subscriber is encoded per subscriber.
 */
import { encodePublish, messagePropertiesBlock, type PublishEncoding } from './encode.js';
import { expiryLeft, type Message } from './message.js';

export interface PublishTarget {
  readonly version: number;
  /** Outgoing topic aliases (v5 clients that announced a Topic Alias Maximum), else undefined. */
  readonly topicAliases: TopicAliasesOut | undefined;
}

/** Aliases the broker assigns to the topics it sends to one client, up to the client's maximum. */
export class TopicAliasesOut {
  private readonly aliases = new Map<string, number>();
  constructor(private readonly maximum: number) {}

  /** The alias for a topic and whether the client already knows it; undefined when all are used. */
  aliasFor(topic: string): { alias: number; known: boolean } | undefined {
    const alias = this.aliases.get(topic);
    if (alias !== undefined) return { alias, known: true };
    if (this.aliases.size >= this.maximum) return undefined;
    const fresh = this.aliases.size + 1;
    this.aliases.set(topic, fresh);
    return { alias: fresh, known: false };
  }
}

export class PublishEncoder {
  private lastMessage: Message | undefined;
  /** Shared encodings of lastMessage at QoS 0: index (v5 ? 2 : 0) + (retain ? 1 : 0). */
  private shared: (Buffer | undefined)[] = [undefined, undefined, undefined, undefined];
  private propsBlock: Buffer | undefined;

  encode(
    target: PublishTarget,
    message: Message,
    qos: number,
    retain: boolean,
    dup: boolean,
    packetId: number | undefined,
    subscriptionIds: number[] | undefined,
    now: number,
  ): Buffer {
    if (message !== this.lastMessage) {
      this.lastMessage = message;
      this.shared = [undefined, undefined, undefined, undefined];
      this.propsBlock = undefined;
    }
    const v5 = target.version === 5;
    const perTarget = v5 && (message.expiresAt !== undefined || subscriptionIds !== undefined || target.topicAliases !== undefined);
    if (qos === 0 && !perTarget) {
      const slot = (v5 ? 2 : 0) + (retain ? 1 : 0);
      let bytes = this.shared[slot];
      if (bytes === undefined) {
        bytes = encodePublish({
          version: target.version,
          topic: message.topic,
          payload: message.payload,
          qos: 0,
          retain,
          dup: false,
          ...(v5 ? { properties: this.messageProps(message) } : {}),
        });
        this.shared[slot] = bytes;
      }
      return bytes;
    }
    const fields: PublishEncoding = { version: target.version, topic: message.topic, payload: message.payload, qos, retain, dup };
    if (packetId !== undefined) fields.packetId = packetId;
    if (v5) {
      fields.properties = this.messageProps(message);
      const left = expiryLeft(message, now);
      if (left !== undefined) fields.expiry = left;
      const alias = target.topicAliases?.aliasFor(message.topic);
      if (alias !== undefined) {
        fields.topicAlias = alias.alias;
        if (alias.known) fields.topic = '';
      }
      if (subscriptionIds !== undefined) fields.subscriptionIds = subscriptionIds;
    }
    return encodePublish(fields);
  }

  private messageProps(message: Message): Buffer {
    return (this.propsBlock ??= messagePropertiesBlock(message.properties));
  }
}
