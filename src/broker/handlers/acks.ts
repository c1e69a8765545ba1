/**
 * PUBACK, PUBREC, PUBREL and PUBCOMP from a client (MQTT 5 sections 3.4-3.7): the outgoing QoS 1/2 flows
 * of its session move on, and an inbound QoS 2 flow ends with PUBCOMP once its packet id is forgotten
 * durably (else a restart could take a reused id for a duplicate).
 */
import type { Connection } from '../connection.js';
import type { AckPacket } from '../decode.js';
import { RC } from '../reason-codes.js';

export function handleAck(conn: Connection, p: AckPacket): void {
  const session = conn.session!;
  switch (p.cmd) {
    case 'puback':
    case 'pubcomp':
      // An unknown id (already completed, or never sent) is ignored, as mosquitto does.
      session.complete(p.packetId, p.cmd);
      return;
    case 'pubrec':
      // PUBREC for an id we are not sending: PUBREL with 0x92 ends the client's flow (v3: a plain PUBREL).
      if (!session.received(p.packetId, p.reasonCode)) conn.sendAck('pubrel', p.packetId, RC.PACKET_IDENTIFIER_NOT_FOUND);
      return;
    case 'pubrel': {
      const known = session.incomingQoS2.delete(p.packetId);
      if (known && session.persistent) conn.ctx.store.deleteIncoming(conn.clientId, p.packetId);
      conn.ackAfterFlush(() => conn.sendAck('pubcomp', p.packetId, known ? RC.SUCCESS : RC.PACKET_IDENTIFIER_NOT_FOUND));
      return;
    }
  }
}

