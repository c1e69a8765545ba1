/**
 * AUTH (MQTT 5 section 3.15). Enhanced authentication is not offered: a CONNECT with an authentication
 * method is refused with 0x8C (handlers/connect.ts), so an AUTH packet can only be a protocol error.
 */
import type { Connection } from '../connection.js';
import { ProtocolError } from '../decode.js';
import { RC } from '../reason-codes.js';

export function handleAuth(conn: Connection): void {
  throw new ProtocolError(conn.version === 5 ? RC.PROTOCOL_ERROR : RC.MALFORMED_PACKET, 'AUTH without an authentication method (enhanced authentication is not supported)');
}
