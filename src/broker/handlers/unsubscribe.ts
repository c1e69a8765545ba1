/** UNSUBSCRIBE (MQTT 5 section 3.10): UNSUBACK with a code per filter (v5) once the change is durable. */
import type { UnsubscribePacket } from '../decode-control.js';
import type { Connection } from '../connection.js';
import { encodeSubscriptionAck } from '../encode.js';
import { RC } from '../reason-codes.js';

export function handleUnsubscribe(conn: Connection, packet: UnsubscribePacket): void {
  const { ctx } = conn;
  const session = conn.session!;
  const codes = packet.unsubscriptions.map((filter) => (ctx.sessions.removeSubscription(session, filter) ? RC.SUCCESS : RC.NO_SUBSCRIPTION_EXISTED));
  if (session.persistent) ctx.sessions.save(session);
  conn.ackAfterFlush(() => conn.send(encodeSubscriptionAck('unsuback', packet.messageId, conn.version, codes)));
}
