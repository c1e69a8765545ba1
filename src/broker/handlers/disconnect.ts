/**
 * DISCONNECT from a client (MQTT 5 section 3.14): a normal disconnect drops the will, reason 0x04 keeps it;
 * a v5 client may change its session expiry interval here, but not from 0 to more (MQTT-3.14.2-2).
 */
import type { DisconnectPacket } from '../decode-control.js';
import type { Connection } from '../connection.js';
import { ProtocolError } from '../decode.js';
import { RC } from '../reason-codes.js';

export function handleDisconnect(conn: Connection, packet: DisconnectPacket): void {
  const session = conn.session!;
  const expiry = conn.version === 5 ? packet.properties?.sessionExpiryInterval : undefined;
  if (expiry !== undefined) {
    if (session.expiryInterval === 0 && expiry > 0) throw new ProtocolError(RC.PROTOCOL_ERROR, 'session expiry interval set on DISCONNECT after 0 at CONNECT');
    if (session.persistent && expiry === 0) conn.ctx.store.deleteSession(session.clientId);
    session.expiryInterval = expiry;
  }
  conn.gracefulDisconnect = packet.reasonCode !== RC.DISCONNECT_WITH_WILL;
  conn.closeReason = 'client';
  conn.end();
}
