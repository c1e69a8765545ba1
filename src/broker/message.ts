/**
 * A message as the broker carries it between a publisher, the bus, the retained store and the subscribers'
 * sessions: independent of the MQTT version it arrived with and of the one it leaves with.
 */

export type QoS = 0 | 1 | 2;

/** The MQTT 5 PUBLISH properties that travel with a message unchanged (MQTT 5 section 3.3.2.3). */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  /** Name/value pairs in the order the publisher sent them (MQTT-3.3.2-18: forwarded in that order). */
  userProperties?: [string, string][];
}

export interface Message {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** v5 properties to forward; undefined when the publisher sent none (every v3 message). */
  properties?: MessageProperties;
  /**
   * When the message expires (ms since the epoch), from the publisher's message expiry interval; undefined
   * = never. A subscriber gets the interval that is left (MQTT-3.3.2-6).
   */
  expiresAt?: number;
  /** Client id of the publisher (no-local); undefined for messages the broker makes itself ($SYS). */
  origin?: string;
}

/** Seconds of the message expiry interval left at `now`, or undefined when the message never expires. */
export function expiryLeft(message: Message, now: number): number | undefined {
  if (message.expiresAt === undefined) return undefined;
  return Math.max(0, Math.ceil((message.expiresAt - now) / 1000));
}

export function isExpired(message: Message, now: number): boolean {
  return message.expiresAt !== undefined && message.expiresAt <= now;
}
