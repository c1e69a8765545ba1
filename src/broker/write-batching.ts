/**
 * One write syscall (one TLS record) per connection per event-loop turn instead of one per packet part.
 *
 * Aedes writes every outgoing packet with mqtt-packet's writeToStream, which calls `write()` several times
 * per packet (fixed header, topic, message id, payload); each call on a socket is a syscall, and on TLS a
 * record of its own. The first write of a turn corks the stream and schedules the uncork for the end of
 * the turn (setImmediate), so everything written meanwhile leaves in one writev. Back-pressure is unchanged:
 * corked bytes count in writableLength and write() still returns false past the high-water mark.
 */
import type { Duplex } from 'node:stream';

export function batchWrites(stream: Duplex): void {
  const write = stream.write;
  let corked = false;
  const flush = (): void => {
    corked = false;
    if (!stream.destroyed) stream.uncork();
  };
  stream.write = function batchedWrite(this: Duplex, ...args: Parameters<Duplex['write']>): boolean {
    if (!corked) {
      corked = true;
      this.cork();
      setImmediate(flush);
    }
    return write.apply(this, args);
  } as Duplex['write'];
}
