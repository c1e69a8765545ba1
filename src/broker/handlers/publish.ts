/**
 * PUBLISH from a client (MQTT 5 section 3.3): topic alias, authorization and limits, then the message goes
 * to the broker. A QoS 1/2 PUBLISH is acknowledged (PUBACK / PUBREC) only after everything the message
 * caused in the store (queued for persistent sessions, retained) is durable: a kill -9 at any moment loses
 * no acknowledged message. Acknowledgements keep the order of the PUBLISHes (MQTT-4.6.0-2).
 */
import { isUtf8 } from 'node:buffer';
import type { Connection } from '../connection.js';
import { ProtocolError, type PublishPacket } from '../decode.js';
import type { Message } from '../message.js';
import { RC } from '../reason-codes.js';

export function handlePublish(conn: Connection, p: PublishPacket): void {
  const { ctx } = conn;
  const { config } = ctx;
  const v5 = conn.version === 5;
  let topic = p.topic;
  if (v5 && p.topicAlias !== undefined) {
    const alias = p.topicAlias;
    if (alias === 0 || alias > config.maxTopicAlias) {
      throw new ProtocolError(RC.TOPIC_ALIAS_INVALID, `topic alias ${alias} is outside 1..${config.maxTopicAlias}`);
    }
    if (topic === '') {
      const known = conn.topicAliasesIn?.get(alias);
      if (known === undefined) throw new ProtocolError(RC.PROTOCOL_ERROR, `topic alias ${alias} was never set`);
      topic = known;
    } else {
      (conn.topicAliasesIn ??= new Map()).set(alias, topic);
    }
  }
  if (topic === '') throw new ProtocolError(v5 ? RC.PROTOCOL_ERROR : RC.MALFORMED_PACKET, 'PUBLISH without a topic');
  if (topic.includes('+') || topic.includes('#')) throw new ProtocolError(RC.TOPIC_NAME_INVALID, `PUBLISH topic ${JSON.stringify(topic)} has a wildcard`);

  const session = conn.session!;
  const qos = p.qos;
  if (qos === 2) {
    if (session.incomingQoS2.has(p.packetId)) {
      // A resend of a message already received: acknowledge again, deliver nothing (exactly once).
      conn.ackAfterFlush(() => conn.sendAck('pubrec', p.packetId));
      return;
    }
    if (v5 && session.incomingQoS2.size >= conn.receiveMaximum) {
      throw new ProtocolError(RC.RECEIVE_MAXIMUM_EXCEEDED, `more than Receive Maximum (${conn.receiveMaximum}) QoS 2 PUBLISHes unacknowledged`);
    }
  }

  if (p.retain && !config.retainAvailable) {
    // mosquitto disconnects such a client; v5 says why (0x9A, MQTT 5 section 3.3.1.3).
    throw new ProtocolError(RC.RETAIN_NOT_SUPPORTED, 'retained messages are not available on this broker (retain_available false)');
  }
  let refusal: number | undefined;
  let why = '';
  if (topic.startsWith('$')) {
    refusal = RC.NOT_AUTHORIZED;
    why = 'clients may not publish to $ topics';
  } else if (config.messageSizeLimit > 0 && p.payload.length > config.messageSizeLimit) {
    refusal = RC.IMPLEMENTATION_SPECIFIC_ERROR;
    why = `payload of ${p.payload.length} bytes is above message_size_limit ${config.messageSizeLimit}`;
  } else if (!(conn.clientAcl()?.canPublish(topic) ?? true)) {
    refusal = RC.NOT_AUTHORIZED;
    why = 'denied by the ACL';
  } else if (p.properties?.payloadFormatIndicator === true && !isUtf8(p.payload)) {
    refusal = RC.PAYLOAD_FORMAT_INVALID;
    why = 'payload format indicator says UTF-8 but the payload is not';
  }
  if (refusal !== undefined) {
    // Like mosquitto: the message is dropped, the QoS flow completes, the client stays connected.
    ctx.observer.publishDenied?.();
    ctx.logger.debug({ clientId: conn.clientId, username: conn.username, topic }, `PUBLISH dropped: ${why}`);
    if (qos === 1) conn.ackAfterFlush(() => conn.sendAck('puback', p.packetId, refusal, why));
    else if (qos === 2) conn.ackAfterFlush(() => conn.sendAck('pubrec', p.packetId, refusal, why));
    return;
  }

  const message: Message = { topic, payload: p.payload, qos, retain: p.retain, origin: conn.clientId };
  if (p.properties !== undefined) message.properties = p.properties;
  if (p.messageExpiryInterval !== undefined) message.expiresAt = Date.now() + p.messageExpiryInterval * 1000;
  ctx.observer.messageIn?.(p.payload.length);
  ctx.stats.received(p.payload.length);
  if (qos === 0) {
    ctx.publish(message);
    const congested = ctx.takeCongested();
    if (congested.length > 0) conn.waitForSubscribers(congested);
    return;
  }
  try {
    publishDurably(conn, message, p.packetId);
  } finally {
    const congested = ctx.takeCongested();
    if (congested.length > 0) conn.waitForSubscribers(congested);
  }
}

function publishDurably(conn: Connection, message: Message, packetId: number): void {
  const { ctx } = conn;
  const session = conn.session!;
  const qos = message.qos;
  if (qos === 2) {
    session.incomingQoS2.add(packetId);
    if (session.persistent) ctx.store.putIncoming(conn.clientId, packetId);
  }
  const kind = qos === 1 ? 'puback' : 'pubrec';
  ctx.publish(message, (matched) => {
    const code = matched ? RC.SUCCESS : RC.NO_MATCHING_SUBSCRIBERS;
    conn.ackAfterFlush(() => conn.sendAck(kind, packetId, code));
  });
}
