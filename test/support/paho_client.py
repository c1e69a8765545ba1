"""A paho-mqtt (Debian's python3-paho-mqtt, as Home Assistant uses) client for the tests.

Takes one JSON argument: host, port, cafile, username, password, topic, qos, count, publish (payload or
null), retain, client_id, clean. Connects over TLS, subscribes to topic, publishes `publish` `count` times
when given, waits for `count` messages, prints one JSON line with the CONNACK code and what it received.
"""
import json
import ssl
import sys
import time

import paho.mqtt.client as mqtt

args = json.loads(sys.argv[1])
result = {"rc": None, "received": [], "subscribed": None}
client = mqtt.Client(client_id=args.get("client_id", ""), clean_session=args.get("clean", True), protocol=mqtt.MQTTv311)
if args.get("cafile"):
    client.tls_set(ca_certs=args["cafile"], cert_reqs=ssl.CERT_REQUIRED)
    client.tls_insecure_set(False)
if args.get("username") is not None:
    client.username_pw_set(args["username"], args.get("password"))

def on_connect(c, userdata, flags, rc):
    result["rc"] = rc
    if rc == 0 and args.get("topic"):
        c.subscribe(args["topic"], args.get("qos", 0))

def on_subscribe(c, userdata, mid, granted):
    result["subscribed"] = list(granted)
    if args.get("publish") is not None:
        for i in range(args.get("count", 1)):
            c.publish(args["topic"], "%s-%d" % (args["publish"], i), qos=args.get("qos", 0), retain=args.get("retain", False))

def on_message(c, userdata, msg):
    result["received"].append({"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos, "retain": bool(msg.retain)})

client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(args.get("host", "127.0.0.1"), args["port"], 30)
client.loop_start()
deadline = time.time() + args.get("timeout", 10)
want = args.get("count", 1) if args.get("topic") else 0
while time.time() < deadline:
    if result["rc"] is not None and result["rc"] != 0:
        break
    if result["rc"] == 0 and len(result["received"]) >= want and (want == 0 or result["subscribed"] is not None):
        break
    time.sleep(0.02)
client.disconnect()
client.loop_stop()
print(json.dumps(result))
sys.exit(0 if result["rc"] == 0 else 3)
