/** PINGREQ (MQTT 5 section 3.12): PINGRESP. Any packet counts as keep-alive activity (connection.ts). */
import type { Connection } from '../connection.js';
import { PINGRESP } from '../encode.js';

export function handlePingreq(conn: Connection): void {
  conn.send(PINGRESP);
}
