// The gateway's own GraphiQL page script: React, ReactDOM and GraphiQL are the pinned npm
// builds the gateway serves itself (gateway/graphiql.py); nothing is loaded from elsewhere.
(function () {
  "use strict";

  const EXAMPLE_QUERY = `# GraphiQL, served by the retail gateway (works without internet).
#
# Run with Ctrl-Enter or the play button. Headers (bottom panel) take a demo token:
#   {"Authorization": "Bearer <token printed by make run>"}
# and a sales channel: {"X-Retail-Channel": "mini_program"}.

{
  products(first: 5) {
    edges { node { id title skus { id barcode price { amount currency } } } }
  }
}
`;

  const url = new URL(window.location.href);
  url.search = "";
  url.hash = "";
  const fetchURL = url.toString();
  const wsURL = new URL(fetchURL);
  wsURL.protocol = wsURL.protocol === "https:" ? "wss:" : "ws:";

  const fetcher = GraphiQL.createFetcher({
    url: fetchURL,
    subscriptionUrl: wsURL.toString(),
  });

  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: EXAMPLE_QUERY,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    }),
  );
})();
