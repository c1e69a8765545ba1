/** Hands each decoded packet of a connection to the handler of its type. */
import type { Connection } from '../connection.js';
import type { InboundPacket } from '../decode.js';
import { handleAck } from './acks.js';
import { handleAuth } from './auth.js';
import { handleConnect, type ConnectHooks } from './connect.js';
import { handleDisconnect } from './disconnect.js';
import { handlePingreq } from './ping.js';
import { handlePublish } from './publish.js';
import { handleSubscribe } from './subscribe.js';
import { handleUnsubscribe } from './unsubscribe.js';

export function createDispatcher(hooks: ConnectHooks): (conn: Connection, packet: InboundPacket) => void {
  return (conn, packet) => {
    switch (packet.cmd) {
      case 'publish':
        return handlePublish(conn, packet);
      case 'puback':
      case 'pubrec':
      case 'pubrel':
      case 'pubcomp':
        return handleAck(conn, packet);
      case 'pingreq':
        return handlePingreq(conn);
      case 'connect':
        return handleConnect(conn, packet, hooks);
      case 'subscribe':
        return handleSubscribe(conn, packet);
      case 'unsubscribe':
        return handleUnsubscribe(conn, packet);
      case 'disconnect':
        return handleDisconnect(conn, packet);
      case 'auth':
        return handleAuth(conn);
    }
  };
}
