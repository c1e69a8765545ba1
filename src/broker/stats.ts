/** Counters of what the broker moved, for `$SYS/broker/...` (sys-topics.ts): plain numbers, bumped on the hot path. */
export class BrokerStats {
  messagesReceived = 0;
  messagesSent = 0;
  bytesReceived = 0;
  bytesSent = 0;
  /** Most clients connected at once since the start. */
  maxConnected = 0;
  readonly startedAt = Date.now();

  received(bytes: number): void {
    this.messagesReceived += 1;
    this.bytesReceived += bytes;
  }

  sent(bytes: number): void {
    this.messagesSent += 1;
    this.bytesSent += bytes;
  }
}
