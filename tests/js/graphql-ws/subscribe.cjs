// One graphql-ws subscription (the reference client from npm, pinned in package-lock.json),
// printed as JSON lines for tests/test_subscriptions_e2e.py and infra/bench/subscriptions.py:
//   {"connected":true} once the server acknowledged connection_init (the token is in it),
//   {"next":<the payload: data and/or errors>} per message, {"complete":true} at the end,
//   {"error":{"code","reason"} | [graphql errors]} if the connection or operation failed.
// usage: NODE_PATH=var/graphql-ws/node_modules node subscribe.cjs <ws url> '<json spec>'
//   spec: {"query": "...", "variables": {...}, "token": "<bearer token or empty>",
//          "count": <exit after this many next messages, 0 = never>}
"use strict";
const { createClient } = require("graphql-ws");
const WebSocket = require("ws");

const [url, specText] = process.argv.slice(2);
const spec = JSON.parse(specText);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  lazy: false,
  retryAttempts: 0,
  onNonLazyError: () => {}, // reported through the subscription's error sink below
  connectionParams: spec.token ? { Authorization: `Bearer ${spec.token}` } : {},
  on: {
    connected: () => print({ connected: true }),
    closed: (event) => print({ closed: { code: event.code, reason: event.reason } }),
  },
});

let received = 0;
const done = (code) => client.dispose().finally(() => process.exit(code));
client.subscribe(
  { query: spec.query, variables: spec.variables || {} },
  {
    next: (payload) => {
      print({ next: payload });
      received += 1;
      if (spec.count && received >= spec.count) done(0);
    },
    error: (error) => {
      const shown = Array.isArray(error)
        ? error
        : { code: error.code, reason: error.reason, message: String(error.message || "") };
      print({ error: shown });
      done(1);
    },
    complete: () => {
      print({ complete: true });
      done(0);
    },
  },
);
process.on("SIGTERM", () => done(0));
