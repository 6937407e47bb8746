// Validates HTTPRoute manifests with @kubernetes-models/gateway-api (the Gateway API's
// published schema, compiled by that package). Reads a JSON array of manifests on stdin and
// prints a JSON array with, for each one, {"ok": true} or {"ok": false, "errors": [...]}.
// Used by tests/drivers/test_gateway.py.
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((manifest) => {
  try {
    new HTTPRoute(manifest).validate();
    return { ok: true };
  } catch (error) {
    const errors = (error.errors ?? [error]).map((e) =>
      e.instancePath !== undefined ? `${e.instancePath} ${e.message}` : String(e.message ?? e),
    );
    return { ok: false, errors };
  }
});
process.stdout.write(JSON.stringify(results));
