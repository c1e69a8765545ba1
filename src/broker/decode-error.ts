/** The error every decoding step throws for a packet that breaks the protocol. */
/** A packet that breaks the protocol: the connection closes (v5: after a DISCONNECT with `reasonCode`). */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(
    readonly reasonCode: number,
    message: string,
  ) {
    super(message);
  }
}
