/**
 * CONNECT (MQTT 5 section 3.1, 3.1.1 section 3.1): the client's limits and properties, its client id, keep
 * alive, credentials; then takeover of an existing connection, the session, the will and CONNACK.
 * Every refusal is one log line, one metric and a CONNACK with the reason (v5 reason code and string,
 * or the v3 return code a v3 client understands).
 */
import { randomUUID } from 'node:crypto';
import type { ConnectPacket } from '../decode-control.js';
import type { Connection } from '../connection.js';
import type { RefusalReason } from '../context.js';
import { encodeConnack, Properties } from '../encode.js';
import type { Message, MessageProperties } from '../message.js';
import { TopicAliasesOut } from '../publish-encoder.js';
import { CONNACK_V3, connackCodeV3, RC } from '../reason-codes.js';
import { NEVER_EXPIRES } from '../sessions.js';
import type { StoredWill } from '../store/store.js';
import { topicNameProblem } from '../topics.js';
import { ProtocolError } from '../decode.js';

/** Largest packet a connected client may send; see maxPacketSize in broker.ts. */
export type ConnectHooks = {
  /** Bytes a connected client may send in one packet. */
  maxPacketSizeIn: number;
  /** Called once the client is connected (CONNACK written). */
  accepted(conn: Connection, sessionPresent: boolean): void;
  /** A will to keep while connected. */
  keepWill(will: StoredWill): void;
  /** The session resumed by this connection: a will pending from its last connection is not sent. */
  cancelWill(clientId: string): void;
};

export function handleConnect(conn: Connection, packet: ConnectPacket, hooks: ConnectHooks): void {
  const { ctx } = conn;
  const { config } = ctx;
  const version = packet.protocolVersion;
  conn.version = version;
  conn.state = 'authenticating';
  // Nothing more is read until CONNACK (the socket's own buffer holds what follows; started() resumes).
  conn.socket.pause();
  const v5 = version === 5;
  const props = packet.properties ?? {};

  let expiry: number;
  if (v5) {
    if (props.requestProblemInformation === false) conn.problemInformation = false;
    if (props.authenticationMethod !== undefined) {
      return refuse(conn, RC.BAD_AUTHENTICATION_METHOD, 'bad_authentication_method', `authentication method ${JSON.stringify(props.authenticationMethod)} is not supported (enhanced authentication is not available)`);
    }
    conn.sendWindow = props.receiveMaximum ?? 65_535;
    if (props.maximumPacketSize !== undefined) conn.maxPacketSizeOut = props.maximumPacketSize;
    if ((props.topicAliasMaximum ?? 0) > 0) conn.topicAliases = new TopicAliasesOut(props.topicAliasMaximum!);
    expiry = props.sessionExpiryInterval ?? 0;
  } else {
    conn.sendWindow = config.maxInflightMessages > 0 ? config.maxInflightMessages : 65_535;
    expiry = packet.clean ? 0 : NEVER_EXPIRES;
  }

  let clientId = packet.clientId;
  let assigned = false;
  if (clientId === '') {
    if (!v5 && (!packet.clean || version === 3)) {
      return refuse(conn, RC.CLIENT_IDENTIFIER_NOT_VALID, 'identifier_rejected', version === 3 ? 'empty client id (MQTT 3.1 requires one)' : 'empty client id with clean session off (MQTT-3.1.3-8)');
    }
    clientId = `auto-${randomUUID()}`;
    assigned = v5;
  } else if (version === 3 && clientId.length > 23) {
    return refuse(conn, RC.CLIENT_IDENTIFIER_NOT_VALID, 'identifier_rejected', 'MQTT 3.1 client ids are at most 23 characters');
  }
  conn.clientId = clientId;

  let keepalive = packet.keepalive;
  let serverKeepAlive: number | undefined;
  if (config.maxKeepalive > 0 && (keepalive > config.maxKeepalive || (v5 && keepalive === 0))) {
    if (!v5) {
      return refuse(conn, RC.CLIENT_IDENTIFIER_NOT_VALID, 'keepalive_too_long', `keepalive ${keepalive} s is above max_keepalive ${config.maxKeepalive}`);
    }
    // v5: the server tells the client which keep alive to use (MQTT-3.2.2-21), as mosquitto does.
    if (keepalive !== 0 || config.maxKeepalive < 65_535) {
      keepalive = config.maxKeepalive;
      serverKeepAlive = keepalive;
    }
  }

  let will: StoredWill | undefined;
  if (packet.will) {
    const problem = topicNameProblem(packet.will.topic);
    if (problem !== undefined) throw new ProtocolError(v5 ? RC.TOPIC_NAME_INVALID : RC.MALFORMED_PACKET, `will topic: ${problem}`);
    if (packet.will.retain && !config.retainAvailable) {
      return refuse(conn, RC.RETAIN_NOT_SUPPORTED, 'identifier_rejected', 'a retained will is not possible: retain_available is false');
    }
    will = { clientId, message: willMessage(packet, clientId), delayInterval: v5 ? (packet.will.properties?.willDelayInterval ?? 0) : 0 };
  }

  if (ctx.closing) return refuse(conn, RC.SERVER_SHUTTING_DOWN, 'server_shutting_down', 'the broker is shutting down');

  ctx.policy.authenticate(packet.username, packet.password).then(
    (result) => {
      if (conn.state === 'closed') return;
      if (!result.ok) {
        ctx.observer.authFailed?.();
        const [code, detail] =
          result.reason === 'anonymous_refused'
            ? [RC.NOT_AUTHORIZED, 'anonymous clients are not allowed (allow_anonymous false)']
            : result.reason === 'no_password_file'
              ? [RC.BAD_USER_NAME_OR_PASSWORD, 'a username was given but no password_file is configured']
              : [RC.BAD_USER_NAME_OR_PASSWORD, 'wrong username or password'];
        conn.username = packet.username;
        return refuse(conn, code, result.reason, detail);
      }
      conn.username = result.username;
      if (ctx.closing) return refuse(conn, RC.SERVER_SHUTTING_DOWN, 'server_shutting_down', 'the broker is shutting down');
      accept(conn, packet.clean, expiry, keepalive, { assigned, serverKeepAlive, will }, hooks);
    },
    (err: unknown) => {
      ctx.logger.error({ clientId, err }, 'authentication failed unexpectedly');
      refuse(conn, RC.UNSPECIFIED_ERROR, 'bad_credentials', 'authentication error');
    },
  );
}

function willMessage(packet: ConnectPacket, clientId: string): Message {
  const w = packet.will!;
  const message: Message = { topic: w.topic, payload: w.payload, qos: w.qos, retain: w.retain, origin: clientId };
  const p = w.properties;
  if (p !== undefined) {
    const forwarded: MessageProperties = {};
    if (p.payloadFormatIndicator !== undefined) forwarded.payloadFormatIndicator = p.payloadFormatIndicator;
    if (p.contentType !== undefined) forwarded.contentType = p.contentType;
    if (p.responseTopic !== undefined) forwarded.responseTopic = p.responseTopic;
    if (p.correlationData !== undefined) forwarded.correlationData = p.correlationData;
    if (p.userProperties !== undefined) forwarded.userProperties = p.userProperties;
    if (Object.keys(forwarded).length > 0) message.properties = forwarded;
    // Counted from the will's publication (wills.ts): kept as an interval in ms until then.
    if (p.messageExpiryInterval !== undefined) message.expiresAt = p.messageExpiryInterval * 1000;
  }
  return message;
}

function accept(
  conn: Connection,
  cleanStart: boolean,
  expiry: number,
  keepalive: number,
  extra: { assigned: boolean; serverKeepAlive: number | undefined; will: StoredWill | undefined },
  hooks: ConnectHooks,
): void {
  const { ctx } = conn;
  const { config } = ctx;
  const existing = ctx.connections.get(conn.clientId);
  if (existing !== undefined && existing !== conn) {
    ctx.logger.info({ clientId: conn.clientId, remoteAddress: existing.remoteAddress }, 'client id connected again: the old connection is taken over');
    existing.disconnect(RC.SESSION_TAKEN_OVER, 'another connection took over this session');
  }
  ctx.connections.set(conn.clientId, conn);
  const { session, present } = ctx.sessions.open(conn.clientId, cleanStart, expiry, conn.version as 3 | 4 | 5);
  hooks.cancelWill(conn.clientId);
  conn.session = session;
  if (extra.will !== undefined) {
    conn.will = extra.will;
    hooks.keepWill(extra.will);
  }

  const props = new Properties();
  if (conn.version === 5) {
    const receiveMaximum = config.maxInflightMessages > 0 ? Math.min(config.maxInflightMessages, 65_535) : 65_535;
    if (receiveMaximum < 65_535) props.u16(0x21, receiveMaximum);
    if (config.maxTopicAlias > 0) props.u16(0x22, Math.min(config.maxTopicAlias, 65_535));
    if (hooks.maxPacketSizeIn < 268_435_460) props.u32(0x27, hooks.maxPacketSizeIn);
    if (!config.retainAvailable) props.byte(0x25, 0);
    if (extra.assigned) props.string(0x12, conn.clientId);
    if (extra.serverKeepAlive !== undefined) props.u16(0x13, extra.serverKeepAlive);
  }
  conn.send(encodeConnack({ version: conn.version, sessionPresent: present, code: 0, properties: props }));
  conn.started(keepalive, hooks.maxPacketSizeIn);
  hooks.accepted(conn, present);
  session.attach(conn);
}

function refuse(conn: Connection, code: number, reason: RefusalReason, detail: string): void {
  const { ctx } = conn;
  ctx.logger.warn(
    { clientId: conn.clientId || undefined, username: conn.username, remoteAddress: conn.remoteAddress, listener: conn.listener, protocolVersion: conn.version, reason },
    `connection refused: ${detail}`,
  );
  ctx.observer.connectionRefused?.(reason);
  conn.closeReason = reason;
  if (conn.version === 5) {
    const props = new Properties();
    if (conn.problemInformation) props.string(0x1f, detail);
    conn.send(encodeConnack({ version: 5, sessionPresent: false, code, properties: props }));
  } else {
    const v3 = reason === 'keepalive_too_long' ? CONNACK_V3.IDENTIFIER_REJECTED : connackCodeV3(code);
    conn.send(encodeConnack({ version: conn.version, sessionPresent: false, code: v3 }));
  }
  conn.end();
}
