// Shared by the SFU test pages: call our Cloudflare-compatible API the way
// Cloudflare's example clients do (bearer secret, JSON body without a
// Content-Type; a request-level or DataChannel item error throws), and wait
// for ICE with the examples' 5 s limit.
// Query of the including page: api, app, secret.
const q = new URLSearchParams(location.search);
const API_BASE = `${q.get('api')}/v1/apps/${q.get('app')}`;
const headers = {Authorization: `Bearer ${q.get('secret')}`};
const log = [];

async function call(method, path, body) {
  const response = await fetch(API_BASE + path, {method, headers,
    body: body === undefined ? undefined : JSON.stringify(body)});
  const json = await response.json();
  log.push({method, path, status: response.status});
  if (!response.ok || json.errorCode) throw new Error(`${method} ${path} ${response.status} ${JSON.stringify(json)}`);
  for (const item of json.dataChannels || []) {
    if (item.errorCode) throw new Error(`${method} ${path} item ${JSON.stringify(item)}`);
  }
  return json;
}

function within(ms, promise, what) {
  return Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms))]);
}

function iceConnected(pc) {
  return within(5000, new Promise(resolve => {
    const check = () => { if (pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed') resolve(); };
    pc.addEventListener('iceconnectionstatechange', check); check();
  }), 'ICE connected');
}
