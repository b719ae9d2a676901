// N graphql-ws clients (one connection each) subscribed to one store's queue, for
// infra/bench/subscriptions.py. Prints JSON lines: {"connected": N} once every client is
// acknowledged; then, per round, {"round": r, "done": <ms epoch when every client had
// `per_round` more events>, "min": <fewest events a client has>, "max": ...}.
// usage: NODE_PATH=var/graphql-ws/node_modules node fanout.cjs <ws url> <token> <N> <per_round>
"use strict";
const { createClient } = require("graphql-ws");
const WebSocket = require("ws");

const [url, token, countText, perRoundText] = process.argv.slice(2);
const count = Number(countText);
const perRound = Number(perRoundText);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const query = 'subscription { storePickupQueue(storeId: "st_001") { orderId sequence resumeToken } }';

const received = new Array(count).fill(0);
let connected = 0;
let round = 1;
let atTarget = 0; // clients that reached round * perRound

for (let i = 0; i < count; i += 1) {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    onNonLazyError: (error) => print({ error: String(error && error.code) }),
    connectionParams: { Authorization: `Bearer ${token}` },
    on: {
      connected: () => {
        connected += 1;
        if (connected === count) print({ connected: count });
      },
    },
  });
  client.subscribe(
    { query },
    {
      next: (payload) => {
        if (payload.errors) print({ error: payload.errors });
        received[i] += 1;
        if (received[i] === round * perRound) {
          atTarget += 1;
          if (atTarget === count) {
            print({ round, done: Date.now(), min: Math.min(...received), max: Math.max(...received) });
            round += 1;
            atTarget = 0;
          }
        }
      },
      error: (error) => print({ error: String(error && (error.code || error.message || error)) }),
      complete: () => print({ complete: i }),
    },
  );
}
process.on("SIGTERM", () => process.exit(0));
