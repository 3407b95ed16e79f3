// The demo page of `twistd realtime` (realtime/api/demo.py): plain JavaScript, no library.
//
// What it does, all with the public sessions API (docs/api.md) through the same-origin
// proxy at /demo/api (the server adds the app; this page never holds a secret):
//
//   publisher PC  ── sessions/new, tracks/new (offer: camera in 3 simulcast layers f/h/q
//                    + microphone), then datachannels/establish + renegotiate and
//                    datachannels/new {location: local, "echo"}
//   subscriber PC ── sessions/new, tracks/new (pull both tracks, preferredRid "h": the
//                    SFU's offer) + renegotiate, datachannels/establish + renegotiate,
//                    datachannels/new {location: remote, "echo", canReply: true}
//   layer buttons ── tracks/update {mid, simulcast: {preferredRid}}
//   echo          ── the publisher sends on "echo"; the SFU fans it out to the
//                    subscriber, which sends it back (canReply); the SFU hands the reply
//                    to the publisher: a round trip through the SFU twice.
//
// window.demo holds the state the page shows (the interop test reads it).
'use strict';

const API = '/demo/api';
const LAYERS = [{rid: 'f'}, {rid: 'h', scaleResolutionDownBy: 2}, {rid: 'q', scaleResolutionDownBy: 4}];
const $ = id => document.getElementById(id);

const demo = window.demo = {
  state: 'idle', error: null, calls: [], push: null, pull: null, videoMid: null,
  preferredRid: 'h', echo: {sent: 0, answered: 0, lastRttMs: null, messages: []},
  stats: {push: {}, pull: {}},
};
let publisher = null, subscriber = null, stream = null, echoChannel = null, ticker = null;

function setStatus(text, error) {
  demo.state = text;
  $('status').textContent = text;
  $('status').classList.toggle('error', Boolean(error));
}

// One call of the sessions API (the path after /v1/apps/{appId}); throws on an error
// of the request or of any of its items.
async function call(method, path, body) {
  const started = performance.now();
  const response = await fetch(API + path, {
    method, headers: body === undefined ? {} : {'content-type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  const ms = Math.round(performance.now() - started);
  demo.calls.push({method, path, status: response.status, ms});
  const line = document.createElement('li');
  line.textContent = `${method} ${path} → ${response.status} (${ms} ms)`;
  $('calls').append(line);
  if (!response.ok || json.errorCode) {
    throw new Error(`${method} ${path}: ${response.status} ${json.errorCode || ''} ${json.errorDescription || ''}`);
  }
  for (const item of [...(json.tracks || []), ...(json.dataChannels || [])]) {
    if (item.errorCode) throw new Error(`${method} ${path}: ${item.errorCode} ${item.errorDescription || ''}`);
  }
  return json;
}

function within(ms, promise, what) {
  return Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what}: not within ${ms / 1000} s`)), ms))]);
}

function connected(pc, what) {
  return within(10000, new Promise(resolve => {
    const check = () => {
      if (['connected', 'completed'].includes(pc.iceConnectionState)) resolve();
    };
    pc.addEventListener('iceconnectionstatechange', check);
    check();
  }), `${what} ICE connected`);
}

function opened(channel) {
  return within(10000, new Promise(resolve => {
    if (channel.readyState === 'open') resolve(); else channel.addEventListener('open', () => resolve());
  }), `DataChannel ${channel.label} open`);
}

// Apply an SFU offer and send our answer back with PUT renegotiate.
async function answerOffer(pc, sessionId, offer) {
  await pc.setRemoteDescription(offer);
  await pc.setLocalDescription(await pc.createAnswer());
  await call('PUT', `/sessions/${sessionId}/renegotiate`,
    {sessionDescription: {type: 'answer', sdp: pc.localDescription.sdp}});
}

// Give a session an SCTP transport: the SFU offers an m=application section.
async function establishDataChannels(pc, sessionId) {
  const reply = await call('POST', `/sessions/${sessionId}/datachannels/establish`,
    {dataChannel: {location: 'remote', dataChannelName: 'server-events'}});
  if (reply.requiresImmediateRenegotiation) await answerOffer(pc, sessionId, reply.sessionDescription);
}

async function publish() {
  stream = await navigator.mediaDevices.getUserMedia(
    {video: {width: 1280, height: 720, frameRate: {ideal: 30}}, audio: true});
  $('local').srcObject = stream;
  publisher = new RTCPeerConnection({bundlePolicy: 'max-bundle'});
  const video = publisher.addTransceiver(stream.getVideoTracks()[0],
    {direction: 'sendonly', sendEncodings: LAYERS});
  const audio = publisher.addTransceiver(stream.getAudioTracks()[0], {direction: 'sendonly'});
  const sessionId = (await call('POST', '/sessions/new')).sessionId;
  demo.push = {sessionId, tracks: ['camera', 'microphone']};
  $('id-push').textContent = sessionId;
  await publisher.setLocalDescription(await publisher.createOffer());
  const reply = await call('POST', `/sessions/${sessionId}/tracks/new`, {
    sessionDescription: {type: 'offer', sdp: publisher.localDescription.sdp},
    tracks: [{location: 'local', mid: video.mid, trackName: 'camera'},
             {location: 'local', mid: audio.mid, trackName: 'microphone'}],
  });
  await publisher.setRemoteDescription(reply.sessionDescription);
  await connected(publisher, 'publisher');
  await establishDataChannels(publisher, sessionId);
  const [published] = (await call('POST', `/sessions/${sessionId}/datachannels/new`,
    {dataChannels: [{location: 'local', dataChannelName: 'echo'}]})).dataChannels;
  echoChannel = publisher.createDataChannel('echo', {negotiated: true, id: published.id});
  echoChannel.addEventListener('message', event => answered(event.data));
  demo.push.channelId = published.id;
}

async function subscribe() {
  subscriber = new RTCPeerConnection({bundlePolicy: 'max-bundle'});
  const received = new MediaStream();
  subscriber.addEventListener('track', event => {
    received.addTrack(event.track);
    $('remote').srcObject = received;
  });
  const sessionId = (await call('POST', '/sessions/new')).sessionId;
  demo.pull = {sessionId};
  $('id-pull').textContent = sessionId;
  const from = demo.push.sessionId;
  const reply = await call('POST', `/sessions/${sessionId}/tracks/new`, {tracks: [
    {location: 'remote', sessionId: from, trackName: 'camera', simulcast: {preferredRid: demo.preferredRid}},
    {location: 'remote', sessionId: from, trackName: 'microphone'},
  ]});
  demo.videoMid = reply.tracks[0].mid;
  demo.pull.mids = reply.tracks.map(t => t.mid);
  await answerOffer(subscriber, sessionId, reply.sessionDescription);
  await connected(subscriber, 'subscriber');
  await establishDataChannels(subscriber, sessionId);
  const [copy] = (await call('POST', `/sessions/${sessionId}/datachannels/new`, {dataChannels: [
    {location: 'remote', sessionId: from, dataChannelName: 'echo', canReply: true}]})).dataChannels;
  const channel = subscriber.createDataChannel('echo', {negotiated: true, id: copy.id});
  channel.addEventListener('message', event => channel.send(event.data));  // the echo
  demo.pull.channelId = copy.id;
  await Promise.all([opened(echoChannel), opened(channel)]);
  $('id-tracks').textContent = `camera (pulled on mid ${demo.pull.mids[0]}), ` +
    `microphone (mid ${demo.pull.mids[1]}), both published by ${from}`;
  $('id-channels').textContent = `echo: ${demo.push.channelId} at the publisher, ` +
    `${demo.pull.channelId} at the subscriber`;
}

// ---- the DataChannel echo ----------------------------------------------------

// `auto`: the ping sent with every statistics sample (counted, not listed)
function sendEcho(text, auto) {
  if (!echoChannel || echoChannel.readyState !== 'open') return;
  demo.echo.sent += 1;
  echoChannel.send(JSON.stringify({n: demo.echo.sent, text, auto: Boolean(auto), sentAt: performance.now()}));
  $('echo-summary').textContent = summary();
}

function answered(data) {
  let message;
  try { message = JSON.parse(data); } catch (e) { return; }
  const rtt = performance.now() - message.sentAt;
  demo.echo.answered += 1;
  demo.echo.lastRttMs = Math.round(rtt * 10) / 10;
  $('echo-summary').textContent = summary();
  if (message.auto) return;
  demo.echo.messages.push(message.text);
  const line = document.createElement('li');
  line.textContent = `#${message.n} "${message.text}" came back in ${rtt.toFixed(1)} ms`;
  $('echo-log').prepend(line);
}

function summary() {
  const rtt = demo.echo.lastRttMs === null ? '' : `, last round trip ${demo.echo.lastRttMs} ms`;
  return `${demo.echo.answered} of ${demo.echo.sent} answered${rtt}`;
}

// ---- simulcast layer -----------------------------------------------------------

async function chooseLayer(rid) {
  await call('PUT', `/sessions/${demo.pull.sessionId}/tracks/update`, {tracks: [{
    location: 'remote', mid: demo.videoMid, sessionId: demo.push.sessionId, trackName: 'camera',
    simulcast: {preferredRid: rid}}]});
  demo.preferredRid = rid;
  showLayer();
}

function showLayer() {
  for (const button of document.querySelectorAll('button.layer')) {
    button.classList.toggle('active', button.dataset.rid === demo.preferredRid);
  }
}

// ---- statistics ------------------------------------------------------------------

const kbps = (bytes, before, seconds) => before === undefined ? null : (bytes - before) * 8 / 1000 / seconds;
const fmtKbps = value => value === null ? '–' : `${Math.round(value)} kbit/s`;
const fmtMs = seconds => seconds === undefined ? '–' : `${(seconds * 1000).toFixed(1)} ms`;

function roundTrip(report) {
  let rtt;
  report.forEach(r => {
    if (r.type === 'candidate-pair' && r.nominated && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime;
  });
  return rtt;
}

// One sample of both PeerConnections: what the page shows and the test reads.
async function sample(previous, seconds) {
  const push = {layers: {}, nacks: 0, lost: 0}, pull = {};
  (await publisher.getStats()).forEach(r => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') {
      // retransmissions (answers to NACKs, and the padding Chromium sends as old
      // packets over RTX while it probes the bandwidth) are counted apart from media
      const media = r.bytesSent - (r.retransmittedBytesSent || 0);
      const before = previous.push.layers?.[r.rid];
      push.layers[r.rid] = {width: r.frameWidth || 0, height: r.frameHeight || 0,
                            fps: r.framesPerSecond || 0, bytes: media,
                            kbps: kbps(media, before?.bytes, seconds),
                            resent: r.retransmittedBytesSent || 0,
                            resentKbps: kbps(r.retransmittedBytesSent || 0, before?.resent, seconds)};
      push.nacks += r.nackCount || 0;
    } else if (r.type === 'outbound-rtp' && r.kind === 'audio') {
      push.audioBytes = r.bytesSent;
      push.audioKbps = kbps(r.bytesSent, previous.push.audioBytes, seconds);
    } else if (r.type === 'remote-inbound-rtp') {
      push.lost += r.packetsLost || 0;
      if (r.kind === 'video' && r.roundTripTime !== undefined) push.reportRtt = r.roundTripTime;
    }
  });
  push.rtt = roundTrip(await publisher.getStats());
  (await subscriber.getStats()).forEach(r => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      Object.assign(pull, {width: r.frameWidth || 0, height: r.frameHeight || 0,
                           fps: r.framesPerSecond || 0, bytes: r.bytesReceived,
                           framesDecoded: r.framesDecoded || 0, nacks: r.nackCount || 0,
                           lost: r.packetsLost || 0, freezes: r.freezeCount || 0});
      pull.kbps = kbps(r.bytesReceived, previous.pull.bytes, seconds);
    } else if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      pull.audioBytes = r.bytesReceived;
      pull.audioKbps = kbps(r.bytesReceived, previous.pull.audioBytes, seconds);
    }
  });
  pull.rtt = roundTrip(await subscriber.getStats());
  // the received layer: the sent one whose width is closest to what arrives
  const sent = Object.entries(push.layers).filter(([, layer]) => layer.width > 0);
  sent.sort(([, a], [, b]) => Math.abs(a.width - pull.width) - Math.abs(b.width - pull.width));
  pull.layer = pull.width && sent.length ? sent[0][0] : null;
  return {push, pull};
}

function show({push, pull}) {
  const layers = ['f', 'h', 'q'].filter(rid => push.layers[rid]);
  const total = layers.reduce((sum, rid) => sum + (push.layers[rid].kbps || 0), 0);
  const resent = layers.reduce((sum, rid) => sum + (push.layers[rid].resentKbps || 0), 0);
  $('s-push-video').textContent = `${fmtKbps(total)} (` +
    layers.map(rid => `${rid} ${fmtKbps(push.layers[rid].kbps)}`).join(', ') + ')' +
    (resent >= 1 ? ` + ${fmtKbps(resent)} resent` : '');
  $('s-pull-video').textContent = fmtKbps(pull.kbps ?? null);
  $('s-push-size').textContent = layers.map(rid => {
    const l = push.layers[rid];
    return `${rid} ${l.width}×${l.height} @ ${Math.round(l.fps)}`;
  }).join(', ');
  $('s-pull-size').textContent = pull.width ? `${pull.width}×${pull.height} @ ${Math.round(pull.fps)}` : '–';
  $('s-push-layers').textContent = `${layers.length} sent (${layers.join(', ')})`;
  $('s-pull-layer').textContent = pull.layer ? `${pull.layer} (asked for ${demo.preferredRid})` : '–';
  $('s-push-audio').textContent = fmtKbps(push.audioKbps ?? null);
  $('s-pull-audio').textContent = fmtKbps(pull.audioKbps ?? null);
  $('s-push-rtt').textContent = fmtMs(push.rtt) +
    (push.reportRtt === undefined ? '' : ` (RTCP: ${fmtMs(push.reportRtt)})`);
  $('s-pull-rtt').textContent = fmtMs(pull.rtt);
  $('s-push-nack').textContent = `${push.nacks} received from the SFU`;
  $('s-pull-nack').textContent = `${pull.nacks ?? 0} sent to the SFU`;
  $('s-push-lost').textContent = `${push.lost} (reported by the SFU)`;
  $('s-pull-lost').textContent = `${pull.lost ?? 0}, ${pull.freezes ?? 0} freezes`;
  $('sent-caption').textContent = layers.length ? `${push.layers.f?.width || 0}×${push.layers.f?.height || 0}, ${layers.length} layers` : '–';
  $('received-caption').textContent = pull.width ? `${pull.width}×${pull.height}, layer ${pull.layer}` : '–';
}

async function tick(previous, at) {
  if (!publisher || !subscriber) return;
  const now = performance.now();
  try {
    demo.stats = await sample(previous, (now - at) / 1000);
    show(demo.stats);
    sendEcho('ping', true);
  } catch (error) {
    console.log('stats: ' + error);
  }
  ticker = setTimeout(() => tick(demo.stats, now), 1000);
}

// ---- start and stop ------------------------------------------------------------------

async function start() {
  $('start').disabled = true;
  $('stop').disabled = false;
  try {
    setStatus('publishing…');
    await publish();
    setStatus('subscribing…');
    await subscribe();
    for (const button of document.querySelectorAll('button.layer')) button.disabled = false;
    $('echo-text').disabled = $('echo-send').disabled = false;
    showLayer();
    setStatus('live');
    tick({push: {layers: {}}, pull: {}}, performance.now());
  } catch (error) {
    demo.error = String(error);
    setStatus(`error: ${error.message || error}`, true);
    console.log('demo: ' + error);
  }
}

function stop() {
  clearTimeout(ticker);
  for (const pc of [publisher, subscriber]) if (pc) pc.close();
  if (stream) for (const track of stream.getTracks()) track.stop();
  publisher = subscriber = stream = echoChannel = null;
  $('stop').disabled = true;
  $('start').disabled = false;
  for (const button of document.querySelectorAll('button.layer')) button.disabled = true;
  $('echo-text').disabled = $('echo-send').disabled = true;
  setStatus('stopped (the SFU closes the sessions when their PeerConnections go quiet)');
}

// The received audio is the microphone itself, back through the SFU: muted unless asked,
// or the speakers would feed it into the microphone again.
$('listen').addEventListener('change', () => { $('remote').muted = !$('listen').checked; });
$('start').addEventListener('click', start);
$('stop').addEventListener('click', stop);
for (const button of document.querySelectorAll('button.layer')) {
  button.addEventListener('click', () => chooseLayer(button.dataset.rid).catch(error => {
    demo.error = String(error);
    setStatus(`error: ${error.message || error}`, true);
  }));
}
$('echo-form').addEventListener('submit', event => {
  event.preventDefault();
  sendEcho($('echo-text').value);
});
