/**
 * A ceiling on the size of one MQTT packet, checked as soon as its length header is parsed, so that a
 * client announcing a huge packet is disconnected before the broker buffers it. Aedes creates its
 * mqtt-packet parser without such an option; we wrap that one parser's length step (an Aedes edge).
 */
import type { Client } from 'aedes';

/** CONNECT carries at most five 2-byte-length strings (client id, will topic/payload, user, password). */
const MAX_CONNECT_PACKET = 5 * (2 + 65_535) + 10 + 4;

interface ParserInternals {
  packet: { length: number; cmd?: string };
  _parseLength(): boolean;
  _emitError(err: Error): void;
}

export function limitPacketSize(client: Client, maxPacketSize: number): void {
  const parser = (client as unknown as { _parser?: ParserInternals })._parser;
  if (!parser || typeof parser._parseLength !== 'function') {
    throw new Error('aedes internals changed: client._parser._parseLength is missing (check the aedes version)');
  }
  const parseLength = parser._parseLength;
  parser._parseLength = function limitedParseLength(this: ParserInternals): boolean {
    const complete = parseLength.call(this);
    if (complete) {
      const limit = client.connected ? maxPacketSize : Math.min(maxPacketSize, MAX_CONNECT_PACKET);
      if (this.packet.length > limit) {
        this._emitError(new Error(`packet of ${this.packet.length} bytes exceeds the limit of ${limit} bytes`));
        return false;
      }
    }
    return complete;
  };
}
