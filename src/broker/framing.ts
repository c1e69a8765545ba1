/**
 * Cuts a connection's byte stream into MQTT packets (fixed header + Remaining Length + body), checking the
 * announced length against the limit before anything of the body is buffered. Bytes of a packet that
 * arrives in pieces are gathered until it is whole, and joined once.
 */
import { ProtocolError } from './decode.js';
import { RC } from './reason-codes.js';

/** Where the packets go. */
export interface FrameSink {
  /** One packet: `data[frameStart]` is its fixed header byte, its body is `data[bodyStart..end)`. */
  onFrame(data: Buffer, frameStart: number, bodyStart: number, end: number): void;
  /** True to stop handing packets over (the rest is kept for the next push). */
  mustStop(): boolean;
}

export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the packet at the head of `chunks` once known, else 0. */
  private needed = 0;

  constructor(
    /** Largest packet accepted, in bytes including the fixed header. */
    public maxPacketSize: number,
  ) {}

  /** Bytes held of an incomplete packet. */
  get pending(): number {
    return this.buffered;
  }

  /**
   * Hand every complete packet in `chunk` (and what was held before) to the sink, in order. Stops early
   * when the sink says so (the rest is kept for the next call with an empty chunk). Throws ProtocolError.
   */
  push(chunk: Buffer, sink: FrameSink): void {
    let data: Buffer;
    if (this.buffered === 0) {
      data = chunk;
    } else {
      if (chunk.length > 0) {
        this.chunks.push(chunk);
        this.buffered += chunk.length;
      }
      if (this.needed > 0 && this.buffered < this.needed) return;
      data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
      this.needed = 0;
    }
    let at = 0;
    const total = data.length;
    while (at < total && !sink.mustStop()) {
      if (total - at < 2) break;
      let length = 0;
      let mult = 1;
      let i = at + 1;
      let complete = false;
      for (let n = 0; n < 4 && i < total; n++) {
        const b = data[i++]!;
        length += (b & 0x7f) * mult;
        if (b < 0x80) {
          complete = true;
          break;
        }
        mult *= 128;
      }
      if (!complete) {
        if (i - at - 1 >= 4) throw new ProtocolError(RC.MALFORMED_PACKET, 'malformed Remaining Length');
        break;
      }
      const end = i + length;
      if (end - at > this.maxPacketSize) {
        throw new ProtocolError(RC.PACKET_TOO_LARGE, `packet of ${end - at} bytes exceeds the limit of ${this.maxPacketSize} bytes`);
      }
      if (end > total) {
        this.needed = end - at;
        break;
      }
      sink.onFrame(data, at, i, end);
      at = end;
    }
    if (at < total) {
      const rest = data.subarray(at);
      this.chunks = [rest];
      this.buffered = rest.length;
    }
  }
}
