// What a viewer sees of a received stream, from getStats() (W3C webrtc-stats
// RTCInboundRtpStreamStats), shared by the playback pages:
//   fps          video frames decoded per second over the measuring window
//   freezes      growth of `freezeCount` during the window (a freeze is an
//                inter-frame delay > max(3 x the average, average + 150 ms))
//   concealment  concealedSamples / totalSamplesReceived of the audio
//                during the window (samples the receiver had to invent)
// measured after a warm-up that starts at the first decoded frame, so the
// start of a call (first key frame, jitter buffer filling) is not counted.
function sleep(ms) { return new Promise(r => setTimeout(r, ms)); }

async function inboundStats(pc) {
  const found = {video: {}, audio: {}};
  (await pc.getStats()).forEach(r => { if (r.type === 'inbound-rtp') found[r.kind] = r; });
  return found;
}

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
    if (((await inboundStats(pc)).video.framesDecoded || 0) > 0) return performance.now() - started;
    await sleep(50);
  }
  return null;
}

// Measure `windowMs` of playback after `warmupMs`; `audio` false for video-only streams.
async function playback(pc, {warmupMs = 3000, windowMs = 5000, audio = true} = {}) {
  await sleep(warmupMs);
  const a = snapshot(await inboundStats(pc));
  await sleep(windowMs);
  const b = snapshot(await inboundStats(pc));
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
