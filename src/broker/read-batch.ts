/**
 * How much of a connection's buffered input aedes parses at once.
 *
 * Aedes reads everything the socket has buffered (`conn.read()`) and dispatches every packet in it before it
 * reads again. A publisher that got ahead of the broker can have hundreds of kilobytes waiting, so one read
 * put thousands of messages in flight at once: each a dozen heap objects alive across event-loop turns, which
 * the young-generation GC copies at every scavenge. Reading at most `READ_BATCH` bytes at a time keeps the
 * same throughput (the next batch is read as soon as the last one is dispatched) with a small live set.
 */
import type { Client } from 'aedes';
import type { Duplex } from 'node:stream';

/** Bytes handed to the parser per read: ~200 small PUBLISHes. */
export const READ_BATCH = 4 * 1024;

interface BatchInternals {
  closed: boolean;
  _parsingBatch: number;
  _nextBatch(): void;
}

export function limitReadBatch(client: Client, conn: Duplex, batch = READ_BATCH): void {
  const internals = client as unknown as BatchInternals;
  if (typeof internals._nextBatch !== 'function' || typeof internals._parsingBatch !== 'number') {
    throw new Error('aedes internals changed: client._nextBatch/_parsingBatch are missing (check the aedes version)');
  }
  const read = conn.read;
  conn.read = function limitedRead(this: Duplex, size?: number): unknown {
    if (size !== undefined && size !== null) return read.call(this, size) as unknown;
    if (this.readableLength <= batch || this.readableObjectMode) return read.call(this) as unknown;
    const chunk = read.call(this, batch) as unknown;
    // The stream will not say 'readable' again for data it already holds: if this batch held no complete
    // packet (one larger than a batch is arriving), nothing would ask for the rest.
    setImmediate(resumeIfIdle, internals, this);
    return chunk;
  };
}

function resumeIfIdle(client: BatchInternals, conn: Duplex): void {
  if (!client.closed && client._parsingBatch === 0 && conn.readableLength > 0) client._nextBatch();
}

interface ParserList {
  _list?: { constructor?: { BufferList?: new () => unknown } };
}

/**
 * mqtt-packet's parser keeps unparsed bytes in a `bl` BufferListStream: a full Duplex stream (readable and
 * writable state, an event emitter) per connection, of which it only uses the buffer-list methods. A plain
 * BufferList (the same package's, with the same methods) saves ~0.6 KiB per connected client.
 */
export function leanParserBuffer(client: Client): void {
  const parser = (client as unknown as { _parser?: ParserList })._parser;
  const BufferList = parser?._list?.constructor?.BufferList;
  if (parser === undefined || typeof BufferList !== 'function') {
    throw new Error('aedes internals changed: client._parser._list is not a bl BufferListStream (check the aedes version)');
  }
  parser._list = new BufferList() as ParserList['_list'];
}
