/**
 * Every packet the broker encodes itself, read back with mqtt-packet's parser (an independent decoder):
 * PUBLISH in v3.1.1 and v5 with every property the broker writes, acknowledgements with and without
 * reason codes, CONNACK, SUBACK, UNSUBACK, DISCONNECT.
 */
import { describe, expect, it } from 'vitest';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { encodeAck, encodeConnack, encodeDisconnect, encodePublish, encodeSubscriptionAck, messagePropertiesBlock, Properties } from '../../src/broker/encode.js';

function parse(bytes: Buffer, protocolVersion: 4 | 5): Packet {
  const parser = mqttPacket.parser({ protocolVersion });
  const packets: Packet[] = [];
  parser.on('packet', (p: Packet) => packets.push(p));
  parser.on('error', (e: Error) => {
    throw e;
  });
  parser.parse(bytes);
  expect(packets).toHaveLength(1);
  return packets[0]!;
}

describe('encodePublish', () => {
  const payload = Buffer.from([0, 1, 2, 255, 0x80, 0x7f]);
  it.each([0, 1, 2] as const)('writes a v3.1.1 PUBLISH at QoS %i that mqtt-packet reads back', (qos) => {
    const bytes = encodePublish({ version: 4, topic: 'a/ü/b', payload, qos, retain: true, dup: qos > 0, ...(qos > 0 ? { packetId: 513 } : {}) });
    expect(parse(bytes, 4)).toMatchObject({ cmd: 'publish', topic: 'a/ü/b', payload, qos, retain: true, dup: qos > 0, ...(qos > 0 ? { messageId: 513 } : {}) });
  });

  it('writes a v5 PUBLISH with forwarded properties, expiry, alias and several subscription identifiers', () => {
    const properties = messagePropertiesBlock({
      payloadFormatIndicator: true,
      contentType: 'text/plain',
      responseTopic: 'reply/here',
      correlationData: Buffer.from([9, 8, 7]),
      userProperties: [
        ['a', '1'],
        ['b', '2'],
        ['a', '3'],
      ],
    });
    const bytes = encodePublish({ version: 5, topic: 't/x', payload, qos: 1, retain: false, dup: false, packetId: 7, properties, expiry: 42, topicAlias: 3, subscriptionIds: [1, 300, 268_435_455] });
    const p = parse(bytes, 5) as mqttPacket.IPublishPacket;
    expect(p).toMatchObject({ topic: 't/x', qos: 1, messageId: 7, payload });
    expect(p.properties).toMatchObject({
      payloadFormatIndicator: true,
      contentType: 'text/plain',
      responseTopic: 'reply/here',
      correlationData: Buffer.from([9, 8, 7]),
      userProperties: { a: ['1', '3'], b: '2' },
      messageExpiryInterval: 42,
      topicAlias: 3,
      subscriptionIdentifier: [1, 300, 268_435_455],
    });
  });

  it('writes an empty topic when an alias the client knows stands for it, and no properties at all as length 0', () => {
    const aliased = parse(encodePublish({ version: 5, topic: '', payload, qos: 0, retain: false, dup: false, topicAlias: 9 }), 5) as mqttPacket.IPublishPacket;
    expect(aliased.topic).toBe('');
    expect(aliased.properties?.topicAlias).toBe(9);
    const bare = encodePublish({ version: 5, topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false });
    expect([...bare]).toEqual([0x30, 4, 0, 1, 0x74, 0]);
  });
});

describe('the other packets', () => {
  it('acknowledgements: 4 bytes without a reason, with the code and reason string when there is one (v5)', () => {
    expect([...encodeAck('puback', 258, 4)]).toEqual([0x40, 2, 1, 2]);
    expect([...encodeAck('pubrel', 1, 5)]).toEqual([0x62, 2, 0, 1]);
    const withReason = parse(encodeAck('pubrec', 5, 5, 0x87, 'denied by the ACL'), 5);
    expect(withReason).toMatchObject({ cmd: 'pubrec', messageId: 5, reasonCode: 0x87, properties: { reasonString: 'denied by the ACL' } });
    expect(parse(encodeAck('pubcomp', 6, 5, 0x92), 5)).toMatchObject({ cmd: 'pubcomp', messageId: 6, reasonCode: 0x92 });
  });

  it('CONNACK in v3 and v5 with properties', () => {
    expect([...encodeConnack({ version: 4, sessionPresent: true, code: 0 })]).toEqual([0x20, 2, 1, 0]);
    const props = new Properties().u16(0x21, 20).u16(0x22, 10).u32(0x27, 1000).string(0x12, 'auto-x').u16(0x13, 60);
    expect(parse(encodeConnack({ version: 5, sessionPresent: false, code: 0, properties: props }), 5)).toMatchObject({
      cmd: 'connack',
      sessionPresent: false,
      reasonCode: 0,
      properties: { receiveMaximum: 20, topicAliasMaximum: 10, maximumPacketSize: 1000, assignedClientIdentifier: 'auto-x', serverKeepAlive: 60 },
    });
  });

  it('SUBACK and UNSUBACK with a code per filter; DISCONNECT with a reason', () => {
    expect(parse(encodeSubscriptionAck('suback', 3, 4, [0, 1, 0x80]), 4)).toMatchObject({ cmd: 'suback', messageId: 3, granted: [0, 1, 0x80] });
    expect(parse(encodeSubscriptionAck('suback', 3, 5, [2, 0x87]), 5)).toMatchObject({ cmd: 'suback', messageId: 3, granted: [2, 0x87] });
    expect([...encodeSubscriptionAck('unsuback', 4, 4, [0, 0x11])]).toEqual([0xb0, 2, 0, 4]);
    expect(parse(encodeSubscriptionAck('unsuback', 4, 5, [0, 0x11]), 5)).toMatchObject({ cmd: 'unsuback', messageId: 4, granted: [0, 0x11] });
    expect(parse(encodeDisconnect(0x8e, 'taken over'), 5)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x8e, properties: { reasonString: 'taken over' } });
    expect([...encodeDisconnect(0)]).toEqual([0xe0, 0]);
  });
});
