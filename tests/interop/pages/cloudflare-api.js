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

// Push `tracks` on a new session, one sendonly transceiver each, named `names[i]` (default:
// the track's id); waits for ICE.  Returns the PeerConnection, its transceivers, the
// session id and the tracks/new answer.
async function pushTracks(tracks, names) {
  const pc = new RTCPeerConnection({bundlePolicy: 'max-bundle'});
  const transceivers = tracks.map(track => pc.addTransceiver(track, {direction: 'sendonly'}));
  const sessionId = (await call('POST', '/sessions/new')).sessionId;
  await pc.setLocalDescription(await pc.createOffer());
  const push = await call('POST', `/sessions/${sessionId}/tracks/new`, {
    sessionDescription: {sdp: pc.localDescription.sdp, type: 'offer'},
    tracks: transceivers.map(({mid, sender}, i) => ({location: 'local', mid,
                                                     trackName: names ? names[i] : sender.track.id})),
  });
  await pc.setRemoteDescription(new RTCSessionDescription(push.sessionDescription));
  await iceConnected(pc);
  return {pc, transceivers, sessionId, push};
}

// Simulcast pages: A publishes one camera track in three layers (f, h = 1/2, q = 1/4)
// and waits for ICE; returns what the pages report about the offer and the answer.
// With `withAudio`, the stream's audio track is pushed too (`audioTrackName`).
async function pushSimulcast(stream, withAudio, scalabilityMode) {
  const local = new RTCPeerConnection({bundlePolicy: 'max-bundle'});
  // scalabilityMode (W3C webrtc-svc), e.g. 'L1T3': on each encoding
  const mode = scalabilityMode ? {scalabilityMode} : {};
  const transceiver = local.addTransceiver(stream.getVideoTracks()[0], {direction: 'sendonly',
    sendEncodings: [{rid: 'f', ...mode}, {rid: 'h', scaleResolutionDownBy: 2.0, ...mode},
                    {rid: 'q', scaleResolutionDownBy: 4.0, ...mode}]});
  const audio = withAudio ? local.addTransceiver(stream.getAudioTracks()[0], {direction: 'sendonly'}) : null;
  const {localId, trackName, audioTrackName, push} = await pushTransceivers(local, transceiver, audio);
  const offerSsrcLines = local.localDescription.sdp.split('\n').filter(l => /^a=ssrc/.test(l)).length;
  const answerSimulcast = push.sessionDescription.sdp.split('\n').filter(l => /^a=(rid|simulcast)/.test(l)).map(l => l.trim());
  return {local, localId, trackName, audioTrackName, offerSsrcLines, answerSimulcast};
}

// Push `transceiver` (and `audio`, if not null) of `local` on a new session: the
// offer through tracks/new, the SFU's answer applied, ICE connected.
async function pushTransceivers(local, transceiver, audio) {
  const localId = (await call('POST', '/sessions/new')).sessionId;
  await local.setLocalDescription(await local.createOffer());
  const trackName = transceiver.sender.track.id;
  const push = await call('POST', `/sessions/${localId}/tracks/new`, {
    sessionDescription: {sdp: local.localDescription.sdp, type: 'offer'},
    tracks: [{location: 'local', mid: transceiver.mid, trackName}].concat(audio ?
      [{location: 'local', mid: audio.mid, trackName: audio.sender.track.id}] : []),
  });
  await local.setRemoteDescription(new RTCSessionDescription(push.sessionDescription));
  await iceConnected(local);
  const audioTrackName = audio ? audio.sender.track.id : undefined;
  return {localId, trackName, audioTrackName, push};
}

// B pulls that track asking for layer `rid` (the SFU's offer, B's answer through
// renegotiate) and waits for ICE; `ontrack` (optional) sees B's remote tracks.
async function pullLayer(trackName, sessionId, rid, ontrack) {
  const remote = new RTCPeerConnection({bundlePolicy: 'max-bundle'});
  if (ontrack) remote.ontrack = ontrack;
  const remoteId = (await call('POST', '/sessions/new')).sessionId;
  const pull = await call('POST', `/sessions/${remoteId}/tracks/new`, {
    tracks: [{location: 'remote', trackName, sessionId, simulcast: {preferredRid: rid}}],
  });
  await remote.setRemoteDescription(new RTCSessionDescription(pull.sessionDescription));
  const answer = await remote.createAnswer();
  await remote.setLocalDescription(answer);
  await call('PUT', `/sessions/${remoteId}/renegotiate`, {sessionDescription: {sdp: answer.sdp, type: 'answer'}});
  await iceConnected(remote);
  return {remote, remoteId, mid: pull.tracks[0].mid};
}
