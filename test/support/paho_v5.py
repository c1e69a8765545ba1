"""An MQTT 5 client on Debian's python3-paho-mqtt 1.6.1 (the library family Home Assistant uses), for the tests.

Run with /usr/bin/python3 (the only python with paho here) and one JSON argument:
  host, port, cafile (TLS when given; the host name is not checked), username, password, client_id ('' asks the
  broker to assign one), clean_start (default true), keepalive (default 60),
  properties: CONNECT properties by paho's names without spaces, e.g. {"SessionExpiryInterval": 60,
    "UserProperty": [["k", "v"]], "RequestProblemInformation": 0, "AuthenticationMethod": "SCRAM-SHA-1"},
  will: {topic, payload, qos, retain, properties: {"WillDelayInterval": 5, "ContentType": "text/plain", ...}},
  subscribe: [{topic, qos, no_local, retain_as_published, retain_handling, properties: {"SubscriptionIdentifier": 1}}],
  publish: [{topic, payload, qos, retain, properties: {...}}]  (sent once every subscription is acknowledged),
  honour_receive_maximum: keep to the server's Receive Maximum (default true; paho 1.6.1 itself ignores it),
  count: messages to wait for, hold: seconds to stay connected afterwards, until_disconnected: wait for the
  broker to close the connection, end: "disconnect" (DISCONNECT 0x00, default) | "disconnect_with_will"
  (DISCONNECT 0x04) | "drop" (close the socket without DISCONNECT), timeout: overall seconds (default 10).

Prints one JSON line per event as it happens ({"event": "connack" | "subscribed" | "published" | "message" |
"disconnect", ...}) and a last line {"event": "result", "result": {connack, subscribed, published, received,
disconnect}}; disconnect.from_broker tells a DISCONNECT packet of the broker (its reason code in rc) from a
closed connection or our own DISCONNECT. Exit code 0 when the CONNACK was a success, 3 when it was a refusal, 4 when none came.
Properties are given back by paho's names; binary values as hex; user properties as [[key, value], ...].
"""
import json
import os
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes
from paho.mqtt.subscribeoptions import SubscribeOptions

args = json.loads(sys.argv[1])
lock = threading.Lock()
changed = threading.Condition(lock)
result = {"connack": None, "subscribed": None, "published": [], "received": [], "disconnect": None}


def emit(event, **fields):
    line = dict(fields)
    line["event"] = event
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def to_properties(packet_type, values):
    props = Properties(packet_type)
    for name, value in (values or {}).items():
        if name == "UserProperty":
            value = [(str(k), str(v)) for k, v in value]
        elif name == "CorrelationData" and isinstance(value, str):
            value = value.encode()
        setattr(props, name, value)
    return props


def from_properties(props):
    if props is None:
        return {}
    data = {}
    for name, value in props.json().items():
        if isinstance(value, bytes):
            value = value.hex()
        elif name == "UserProperty":
            value = [list(pair) for pair in value]
        data[name] = value
    return data


def code_of(rc):
    if rc is None:
        return None, None
    if isinstance(rc, ReasonCodes):
        return rc.value, rc.getName()
    return int(rc), str(rc)


client = mqtt.Client(client_id=args.get("client_id", ""), protocol=mqtt.MQTTv5, reconnect_on_failure=False)
if args.get("cafile"):
    client.tls_set(ca_certs=args["cafile"], cert_reqs=ssl.CERT_REQUIRED)
    client.tls_insecure_set(True)
if args.get("username") is not None:
    client.username_pw_set(args["username"], args.get("password"))
will = args.get("will")
if will:
    client.will_set(will["topic"], will.get("payload", ""), will.get("qos", 0), will.get("retain", False),
                    properties=to_properties(PacketTypes.WILLMESSAGE, will.get("properties")) if will.get("properties") else None)

pending_pubs = {}


def on_connect(c, userdata, flags, reason, properties):
    rc, name = code_of(reason)
    with changed:
        result["connack"] = {"rc": rc, "reason": name, "session_present": bool(flags.get("session present")),
                             "properties": from_properties(properties)}
        changed.notify_all()
    emit("connack", **result["connack"])
    if rc != 0:
        return
    # paho 1.6.1 ignores the server's Receive Maximum: keep to it, as an MQTT 5 client must (MQTT-3.3.4-7),
    # unless told not to (to show what the broker does to a client that does not).
    server_max = result["connack"]["properties"].get("ReceiveMaximum")
    if server_max and args.get("honour_receive_maximum", True):
        c.max_inflight_messages_set(min(server_max, 20))
    subs = args.get("subscribe") or []
    if subs:
        for s in subs:
            options = SubscribeOptions(qos=s.get("qos", 0), noLocal=s.get("no_local", False),
                                       retainAsPublished=s.get("retain_as_published", False),
                                       retainHandling=s.get("retain_handling", 0))
            props = to_properties(PacketTypes.SUBSCRIBE, s.get("properties")) if s.get("properties") else None
            c.subscribe(s["topic"], options=options, properties=props)
    else:
        publish_all(c)


acked_subs = []


def on_subscribe(c, userdata, mid, reasons, properties):
    with changed:
        acked_subs.extend(code_of(r)[0] for r in reasons)
        done = len(acked_subs) >= len(args.get("subscribe") or [])
        if done:
            result["subscribed"] = list(acked_subs)
        changed.notify_all()
    if done:
        emit("subscribed", codes=list(acked_subs))
        publish_all(c)


def publish_all(c):
    for p in args.get("publish") or []:
        props = to_properties(PacketTypes.PUBLISH, p.get("properties")) if p.get("properties") else None
        info = c.publish(p["topic"], p.get("payload", ""), p.get("qos", 0), p.get("retain", False), properties=props)
        with changed:
            entry = {"mid": info.mid, "rc": None, "reason": None}
            result["published"].append(entry)
            pending_pubs[info.mid] = entry
            if p.get("qos", 0) == 0:
                entry["rc"] = 0
                entry["reason"] = "Success"
            changed.notify_all()


def on_publish(c, userdata, mid):
    with changed:
        entry = pending_pubs.get(mid)
        if entry is not None and entry["rc"] is None:
            entry["rc"] = 0
            entry["reason"] = "acknowledged"
        changed.notify_all()
    emit("published", mid=mid)


def on_message(c, userdata, msg):
    try:
        payload = msg.payload.decode()
    except UnicodeDecodeError:
        payload = msg.payload.hex()
    entry = {"topic": msg.topic, "payload": payload, "qos": msg.qos, "retain": bool(msg.retain),
             "properties": from_properties(getattr(msg, "properties", None))}
    with changed:
        result["received"].append(entry)
        changed.notify_all()
    emit("message", **entry)


def on_disconnect(c, userdata, reason, properties=None):
    # A DISCONNECT packet from the broker arrives as a ReasonCodes; a closed socket or our own DISCONNECT as an int.
    rc, name = code_of(reason)
    entry = {"rc": rc, "reason": name, "from_broker": isinstance(reason, ReasonCodes),
             "properties": from_properties(properties)}
    with changed:
        if result["disconnect"] is None:
            result["disconnect"] = entry
        changed.notify_all()
    emit("disconnect", **entry)


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_publish = on_publish
client.on_message = on_message
client.on_disconnect = on_disconnect

connect_props = to_properties(PacketTypes.CONNECT, args.get("properties")) if args.get("properties") else None
deadline = time.time() + args.get("timeout", 10)
try:
    client.connect(args.get("host", "127.0.0.1"), args["port"], args.get("keepalive", 60),
                   clean_start=args.get("clean_start", True), properties=connect_props)
except Exception as err:  # refused at TCP/TLS level
    result["error"] = repr(err)
    emit("result", result=result)
    sys.exit(4)
client.loop_start()


def wait_until(predicate, until):
    with changed:
        while not predicate():
            left = until - time.time()
            if left <= 0:
                return False
            changed.wait(min(left, 0.1))
        return True


def connack_done():
    return result["connack"] is not None or result["disconnect"] is not None


def work_done():
    if result["disconnect"] is not None:
        return True
    if result["connack"] is None:
        return False
    if result["connack"]["rc"] != 0:
        return True
    if args.get("subscribe") and result["subscribed"] is None:
        return False
    if any(e["rc"] is None for e in result["published"]):
        return False
    if len(result["published"]) < len(args.get("publish") or []):
        return False
    return len(result["received"]) >= args.get("count", 0)


wait_until(connack_done, deadline)
wait_until(work_done, deadline)
connected = result["connack"] is not None and result["connack"]["rc"] == 0 and result["disconnect"] is None
if connected and args.get("until_disconnected"):
    wait_until(lambda: result["disconnect"] is not None, deadline)
elif connected and args.get("hold"):
    wait_until(lambda: result["disconnect"] is not None, min(deadline, time.time() + args["hold"]))



def flushed():
    # Acknowledgements of received messages are written by paho's thread after on_message returns: let them
    # out before ending, or a resumed session would get those messages again.
    return len(client._out_packet) == 0


if connected:
    time.sleep(0.05)
    wait_until(flushed, time.time() + 2)

end = args.get("end", "disconnect")
if result["disconnect"] is None and connected:
    if end == "drop":
        # As a crash: the socket goes away without DISCONNECT.
        emit("result", result=result)
        sock = client.socket()
        if sock is not None:
            os.close(sock.fileno())
        os._exit(0)
    elif end == "disconnect_with_will":
        client.disconnect(reasoncode=ReasonCodes(PacketTypes.DISCONNECT, "Disconnect with will message"))
    else:
        client.disconnect()
    wait_until(lambda: result["disconnect"] is not None, time.time() + 2)
client.loop_stop()
emit("result", result=result)
if result["connack"] is None:
    sys.exit(4)
sys.exit(0 if result["connack"]["rc"] == 0 else 3)
