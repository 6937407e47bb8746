// Drives @openfeature/ofrep-web-provider (with @openfeature/web-sdk) against a running Stageless
// server and prints one JSON object that tests/api/test_ofrep_web.py asserts on.
//
// Usage: node web_provider.mjs '<config JSON>'
//   config = {baseUrl, sdkToken, adminToken, flagSet, context, defaults: {key: default},
//             changes: [document, document], timeoutMs}
//
// Steps: (1) bulk evaluation through the provider; (2) a flag-set change made through the REST
// API reaches the provider over eventStreams (SSE refetchEvaluation -> refetch with
// If-None-Match -> PROVIDER_CONFIGURATION_CHANGED); (3) a "page reload": a second provider
// starts from the persisted cache, revalidates with If-None-Match and gets 304, then still
// follows a second change over the cached eventStreams URL.

import { EventSource } from 'eventsource';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';

// The web provider is written for browsers. Node 20 has fetch and crypto.subtle, but no
// EventSource and no localStorage: EventSource comes from the `eventsource` package (the
// WHATWG API over fetch), localStorage is this tiny in-memory shim (enough for the provider's
// ADR-0009 cache: getItem/setItem/removeItem).
globalThis.EventSource = EventSource;
const storage = new Map();
globalThis.localStorage = {
  getItem: (key) => (storage.has(key) ? storage.get(key) : null),
  setItem: (key, value) => storage.set(key, String(value)),
  removeItem: (key) => storage.delete(key),
  clear: () => storage.clear(),
  get length() {
    return storage.size;
  },
};

const config = JSON.parse(process.argv[2]);
const timeoutMs = config.timeoutMs ?? 10000;

// Every OFREP request the providers make, with the conditional header and the status.
const requests = [];
const recordingFetch = async (input, init) => {
  const request = input instanceof Request ? input : new Request(input, init);
  const ifNoneMatch = request.headers.get('If-None-Match');
  const response = await fetch(request, init);
  requests.push({
    url: request.url.replace(config.baseUrl, ''),
    ifNoneMatch,
    status: response.status,
    etag: response.headers.get('ETag'),
  });
  return response;
};

function newProvider() {
  return new OFREPWebProvider({
    baseUrl: config.baseUrl,
    headers: [['Authorization', `Bearer ${config.sdkToken}`]],
    fetchImplementation: recordingFetch,
  });
}

function details(client) {
  const out = {};
  for (const [key, fallback] of Object.entries(config.defaults)) {
    let d;
    if (typeof fallback === 'boolean') d = client.getBooleanDetails(key, fallback);
    else if (typeof fallback === 'string') d = client.getStringDetails(key, fallback);
    else if (typeof fallback === 'number') d = client.getNumberDetails(key, fallback);
    else d = client.getObjectDetails(key, fallback);
    out[key] = { value: d.value, variant: d.variant ?? null, reason: d.reason, errorCode: d.errorCode ?? null };
  }
  return out;
}

function nextEvent(client, type) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} within ${timeoutMs} ms`)), timeoutMs);
    const handler = (eventDetails) => {
      clearTimeout(timer);
      client.removeHandler(type, handler);
      resolve(eventDetails);
    };
    client.addHandler(type, handler);
  });
}

async function changeFlagSet(document) {
  const response = await fetch(`${config.baseUrl}/api/v1/flag-sets/${config.flagSet}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${config.adminToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(document),
  });
  if (!response.ok) throw new Error(`PUT flag set: ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
}

async function waitFor(predicate, what) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function changeAndObserve(client) {
  const seen = requests.length;
  const changed = nextEvent(client, ProviderEvents.ConfigurationChanged);
  const started = performance.now();
  await changeFlagSet(config.changes.shift());
  const event = await changed;
  return {
    flagsChanged: [...(event.flagsChanged ?? [])].sort(),
    ms: Math.round(performance.now() - started),
    requests: requests.slice(seen),
    details: details(client),
  };
}

const result = {};
try {
  await OpenFeature.setContext(config.context);
  const client = OpenFeature.getClient();

  // (1) Initial bulk evaluation.
  await OpenFeature.setProviderAndWait(newProvider());
  result.initial = { requests: requests.slice(), details: details(client) };

  // (2) A change through the REST API arrives over eventStreams.
  result.change = await changeAndObserve(client);

  // (3) Page reload: the new provider serves the cache, revalidates (304), follows changes.
  const seen = requests.length;
  await OpenFeature.setProviderAndWait(newProvider());
  await waitFor(() => requests.length > seen, 'the revalidation request');
  result.reload = { requests: requests.slice(seen), details: details(client) };
  result.secondChange = await changeAndObserve(client);
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error?.stack ?? error);
} finally {
  await OpenFeature.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.ok ? 0 : 1);
