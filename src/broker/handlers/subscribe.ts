/**
 * SUBSCRIBE (MQTT 5 section 3.8): per filter validation, ACL, subscription options and identifier; SUBACK
 * with a code per filter once a persistent session's new subscriptions are durable; then the retained
 * messages the retain handling option asks for (0: always, 1: only for a new subscription, 2: never;
 * none for a shared subscription).
 */
import type { SubscribePacket } from '../decode-control.js';
import type { Connection } from '../connection.js';
import { ProtocolError } from '../decode.js';
import { encodeSubscriptionAck } from '../encode.js';
import type { Message, QoS } from '../message.js';
import { RC } from '../reason-codes.js';
import type { StoredSubscription } from '../store/store.js';
import { parseSharedFilter, topicFilterProblem } from '../topics.js';

export function handleSubscribe(conn: Connection, packet: SubscribePacket): void {
  const { ctx } = conn;
  const session = conn.session!;
  const v5 = conn.version === 5;
  const identifier = v5 ? packet.properties?.subscriptionIdentifier : undefined;
  const acl = conn.clientAcl();
  const codes: number[] = [];
  const retainedFor: StoredSubscription[] = [];
  for (const requested of packet.subscriptions) {
    const filter = requested.topic;
    const problem = topicFilterProblem(filter);
    if (problem !== undefined) {
      ctx.logger.debug({ clientId: conn.clientId, filter }, `SUBSCRIBE refused: ${problem}`);
      codes.push(v5 ? RC.TOPIC_FILTER_INVALID : RC.UNSPECIFIED_ERROR);
      continue;
    }
    const shared = parseSharedFilter(filter);
    if (shared !== undefined && requested.nl === true) throw new ProtocolError(RC.PROTOCOL_ERROR, 'no local on a shared subscription (MQTT-3.8.3-4)');
    if (acl !== undefined && !acl.canSubscribe(shared?.filter ?? filter)) {
      ctx.observer.subscribeDenied?.();
      ctx.logger.debug({ clientId: conn.clientId, username: conn.username, filter }, 'SUBSCRIBE denied by the ACL');
      codes.push(v5 ? RC.NOT_AUTHORIZED : RC.UNSPECIFIED_ERROR);
      continue;
    }
    const sub: StoredSubscription = {
      filter,
      qos: requested.qos,
      noLocal: v5 && requested.nl,
      retainAsPublished: v5 && requested.rap,
      retainHandling: v5 ? requested.rh : 0,
    };
    if (identifier !== undefined) sub.identifier = identifier;
    const isNew = ctx.sessions.addSubscription(session, sub);
    codes.push(sub.qos);
    if (shared === undefined && (sub.retainHandling === 0 || (sub.retainHandling === 1 && isNew))) retainedFor.push(sub);
  }
  if (session.persistent) ctx.sessions.save(session);
  conn.ackAfterFlush(() => {
    conn.send(encodeSubscriptionAck('suback', packet.messageId, conn.version, codes));
    const now = Date.now();
    for (const sub of retainedFor) {
      for (const message of ctx.retained.match(sub.filter, now)) sendRetained(conn, message, sub, now);
    }
  });
}

/** A retained message sent because of a SUBSCRIBE always has the retain flag set (MQTT-3.3.1-9). */
function sendRetained(conn: Connection, message: Message, sub: StoredSubscription, now: number): void {
  const qos = Math.min(message.qos, sub.qos) as QoS;
  const ids = sub.identifier === undefined ? undefined : [sub.identifier];
  if (qos === 0) conn.sendQoS0(message, true, ids, now);
  else conn.session?.enqueue(message, qos, true, ids);
}
