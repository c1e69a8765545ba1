"""A long-running MQTT 5 client on Debian's python3-paho-mqtt 1.6.1, driven line by line over stdin.

Run with /usr/bin/python3 (the only interpreter that has paho here). argv[1] is one JSON object:
  host, port, cafile, username, password, client_id, clean_start (default true), session_expiry (seconds),
  topic_alias_maximum, will: {topic, payload, qos, retain, properties}, lifetime (seconds, default 60).
Then every stdin line is one JSON command:
  {"op": "subscribe", "topic", "qos", "no_local", "retain_as_published", "retain_handling", "sub_id"}
  {"op": "unsubscribe", "topics": [...]}
  {"op": "publish", "topic", "payload", "qos", "retain", "properties": {...}}
  {"op": "disconnect", "reason": 0}   (then exits)
Every event is printed as one JSON line on stdout:
  {"event": "connack", "rc", "session_present", "properties"}
  {"event": "suback", "mid", "reason_codes"} / {"event": "unsuback", "mid", "reason_codes"}
  {"event": "message", "topic", "payload", "qos", "retain", "properties"}
  {"event": "published", "mid"} / {"event": "sent", "op", "mid"} / {"event": "disconnected", "rc"}
The process exits on stdin EOF, on "disconnect" or after `lifetime` seconds, whichever comes first.
"""
import json
import ssl
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

args = json.loads(sys.argv[1])
out_lock = threading.Lock()


def emit(event):
    with out_lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def props_json(props):
    if props is None:
        return {}
    # json() keeps user properties as ordered [name, value] pairs and gives correlation data as hex.
    return props.json()


def codes(rcs):
    if not isinstance(rcs, list):
        rcs = [rcs]
    return [rc.value for rc in rcs]


def make_props(packet_type, spec):
    props = Properties(packet_type)
    for name, value in (spec or {}).items():
        if name == "UserProperty":
            props.UserProperty = [tuple(pair) for pair in value]
        elif name == "CorrelationData":
            props.CorrelationData = value.encode() if isinstance(value, str) else bytes(value)
        else:
            setattr(props, name, value)
    return props


client = mqtt.Client(client_id=args.get("client_id", ""), protocol=mqtt.MQTTv5)
if args.get("cafile"):
    client.tls_set(ca_certs=args["cafile"], cert_reqs=ssl.CERT_REQUIRED)
if args.get("username") is not None:
    client.username_pw_set(args["username"], args.get("password"))
will = args.get("will")
if will:
    client.will_set(will["topic"], will.get("payload", ""), will.get("qos", 0), will.get("retain", False),
                    properties=make_props(PacketTypes.WILLMESSAGE, will.get("properties")) if will.get("properties") else None)


def on_connect(c, userdata, flags, rc, properties=None):
    emit({"event": "connack", "rc": rc.value, "session_present": bool(flags.get("session present")),
          "properties": props_json(properties)})


def on_subscribe(c, userdata, mid, reason_codes, properties=None):
    emit({"event": "suback", "mid": mid, "reason_codes": codes(reason_codes)})


def on_unsubscribe(c, userdata, mid, properties, reason_codes):
    emit({"event": "unsuback", "mid": mid, "reason_codes": codes(reason_codes)})


def on_message(c, userdata, msg):
    emit({"event": "message", "topic": msg.topic, "payload": msg.payload.decode("utf-8", "replace"),
          "qos": msg.qos, "retain": bool(msg.retain), "properties": props_json(getattr(msg, "properties", None))})


def on_publish(c, userdata, mid):
    emit({"event": "published", "mid": mid})


def on_disconnect(c, userdata, rc, properties=None):
    emit({"event": "disconnected", "rc": rc.value if hasattr(rc, "value") else rc})


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_unsubscribe = on_unsubscribe
client.on_message = on_message
client.on_publish = on_publish
client.on_disconnect = on_disconnect

connect_props = Properties(PacketTypes.CONNECT)
if args.get("session_expiry") is not None:
    connect_props.SessionExpiryInterval = args["session_expiry"]
if args.get("topic_alias_maximum") is not None:
    connect_props.TopicAliasMaximum = args["topic_alias_maximum"]
client.connect(args.get("host", "127.0.0.1"), args["port"], 30, clean_start=args.get("clean_start", True),
               properties=None if connect_props.isEmpty() else connect_props)
client.loop_start()

done = threading.Event()
lifetime = threading.Timer(args.get("lifetime", 60), done.set)
lifetime.daemon = True
lifetime.start()


def read_commands():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "subscribe":
            options = SubscribeOptions(qos=cmd.get("qos", 0), noLocal=cmd.get("no_local", False),
                                       retainAsPublished=cmd.get("retain_as_published", False),
                                       retainHandling=cmd.get("retain_handling", 0))
            props = None
            if cmd.get("sub_id") is not None:
                props = Properties(PacketTypes.SUBSCRIBE)
                props.SubscriptionIdentifier = cmd["sub_id"]
            rc, mid = client.subscribe(cmd["topic"], options=options, properties=props)
            emit({"event": "sent", "op": op, "rc": rc, "mid": mid})
        elif op == "unsubscribe":
            rc, mid = client.unsubscribe(cmd["topics"])
            emit({"event": "sent", "op": op, "rc": rc, "mid": mid})
        elif op == "publish":
            props = make_props(PacketTypes.PUBLISH, cmd.get("properties")) if cmd.get("properties") else None
            info = client.publish(cmd["topic"], cmd.get("payload", ""), cmd.get("qos", 0), cmd.get("retain", False),
                                  properties=props)
            emit({"event": "sent", "op": op, "rc": info.rc, "mid": info.mid})
        elif op == "disconnect":
            client.disconnect(reasoncode=None)
            break
    done.set()


threading.Thread(target=read_commands, daemon=True).start()
done.wait()
try:
    client.disconnect()
except Exception:  # already disconnected
    pass
client.loop_stop()
sys.exit(0)
