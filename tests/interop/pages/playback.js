// Playback as a viewer sees it, from the receiving RTCPeerConnection's
// inbound-rtp statistics (W3C webrtc-stats, RTCInboundRtpStreamStats):
//
//   * video: framesDecoded over a measured window gives the decoded frame
//     rate; freezeCount counts the freezes the renderer saw (a frame later
//     than max(3 x mean frame duration, mean + 150 ms)); frameWidth is the
//     size being shown;
//   * audio: concealedSamples / totalSamplesReceived is the share of played
//     samples the jitter buffer had to invent because packets were missing
//     or late.
//
// watchPlayback() waits for the first decoded frame, lets the call warm up
// (the first seconds legitimately freeze while the bitrate ramps), then
// measures a window of at least 5 s.  The test (tests/interop/conftest.py,
// assert_plays) decides what a viewer needs.
function sleep(ms) { return new Promise(r => setTimeout(r, ms)); }

async function playbackSnapshot(pc) {
  const snap = {time: performance.now(), video: {}, audio: {}};
  (await pc.getStats()).forEach(r => {
    if (r.type === 'inbound-rtp' && (r.kind === 'video' || r.kind === 'audio')) snap[r.kind] = r;
  });
  return snap;
}

// Play received audio out (muted element): Chromium counts audio samples
// (totalSamplesReceived, concealedSamples) only for a track being played.
function playAudio(pc) {
  for (const receiver of pc.getReceivers()) {
    if (receiver.track.kind !== 'audio') continue;
    const element = document.createElement('audio');
    element.srcObject = new MediaStream([receiver.track]);
    element.autoplay = true;
    document.body.appendChild(element);
    element.play().catch(() => {});
  }
}

async function watchPlayback(pc, {warmupMs = 3000, windowMs = 5500, firstFrameMs = 10000} = {}) {
  playAudio(pc);
  const started = performance.now();
  while (((await playbackSnapshot(pc)).video.framesDecoded || 0) === 0) {
    if (performance.now() - started > firstFrameMs) return {error: 'no video frame decoded'};
    await sleep(50);
  }
  await sleep(warmupMs);
  const a = await playbackSnapshot(pc);
  await sleep(windowMs);
  const b = await playbackSnapshot(pc);
  const seconds = (b.time - a.time) / 1000;
  const delta = (kind, key) => (b[kind][key] || 0) - (a[kind][key] || 0);
  const samples = delta('audio', 'totalSamplesReceived');
  return {
    seconds,
    framesDecoded: delta('video', 'framesDecoded'),
    fps: delta('video', 'framesDecoded') / seconds,
    frameWidth: b.video.frameWidth || 0,
    freezeCountAfterWarmup: a.video.freezeCount || 0,
    freezeCount: b.video.freezeCount || 0,
    audioPackets: b.audio.packetsReceived || 0,
    totalSamplesReceived: samples,
    concealedSamples: delta('audio', 'concealedSamples'),
    concealment: samples > 0 ? delta('audio', 'concealedSamples') / samples : null,
    concealmentSinceStart: b.audio.totalSamplesReceived
      ? (b.audio.concealedSamples || 0) / b.audio.totalSamplesReceived : null,
  };
}

// The same measures under the names the cross-browser pages use (Firefox and
// Chromium through run_browser.js): show() plays what was received,
// firstFrame() waits for the first decoded frame, playback() measures a
// window after a warm-up and reports freezes/concealment as deltas.
function snapshot(stats) {
  const {video, audio} = stats;
  return {t: performance.now(), frames: video.framesDecoded || 0, freezes: video.freezeCount || 0,
          freezeMs: 1000 * (video.totalFreezesDuration || 0), width: video.frameWidth || 0,
          height: video.frameHeight || 0, concealed: audio.concealedSamples || 0,
          samples: audio.totalSamplesReceived || 0, audioPackets: audio.packetsReceived || 0,
          hasFreezeCount: video.freezeCount !== undefined,
          hasConcealment: audio.concealedSamples !== undefined && audio.totalSamplesReceived !== undefined};
}

// Show the received tracks as a user's page would (a playing <video>).
function show(tracks) {
  const element = document.createElement('video');
  element.muted = true; element.autoplay = true; element.playsInline = true;
  element.srcObject = new MediaStream(tracks);
  document.body.appendChild(element);
  element.play().catch(() => {});
  return element;
}

// Wait up to `limitMs` for the first decoded frame; return ms waited, or null.
async function firstFrame(pc, limitMs) {
  const started = performance.now();
  while (performance.now() - started < limitMs) {
    if (((await playbackSnapshot(pc)).video.framesDecoded || 0) > 0) return performance.now() - started;
    await sleep(50);
  }
  return null;
}

// Measure `windowMs` of playback after `warmupMs`; `audio` false for video-only streams.
async function playback(pc, {warmupMs = 3000, windowMs = 5000, audio = true} = {}) {
  await sleep(warmupMs);
  const a = snapshot(await playbackSnapshot(pc));
  await sleep(windowMs);
  const b = snapshot(await playbackSnapshot(pc));
  const seconds = (b.t - a.t) / 1000;
  const samples = b.samples - a.samples;
  return {
    seconds, fps: (b.frames - a.frames) / seconds, framesDecoded: b.frames,
    freezes: b.freezes - a.freezes, freezeMs: b.freezeMs - a.freezeMs,
    freezesBefore: a.freezes, hasFreezeCount: b.hasFreezeCount,
    width: b.width, height: b.height,
    audioSamples: audio ? samples : null,
    concealment: audio ? (samples > 0 ? (b.concealed - a.concealed) / samples : 1) : null,
    hasConcealment: b.hasConcealment, audioPackets: b.audioPackets,
  };
}
