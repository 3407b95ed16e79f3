// The Chromium flags every test page runs with (run_page.js, run_demo.js).
//
// Test traffic stays on this machine: no name resolves but localhost (pages and the
// API are on 127.0.0.1 literals), no background fetches, and no mDNS (.local) host
// candidates, whose registration is multicast.  REALTIME_EXCLUDE (comma-separated
// literals) adds addresses a test made itself, e.g. the namespaces of tests/cluster.
// The fake camera runs at 20 fps unless told otherwise: 30 gives a viewer check of
// >= 20 fps decoded a margin.  Remote audio is played out (pages attach it to an
// <audio> element) so its stats count samples.
module.exports = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , EXCLUDE [::1]'
    + (process.env.REALTIME_EXCLUDE || '').split(',').filter(Boolean).map(a => ` , EXCLUDE ${a}`).join(''),
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-domain-reliability', '--disable-breakpad',
  '--disable-client-side-phishing-detection', '--no-default-browser-check',
  '--metrics-recording-only', '--no-pings',
  '--disable-features=WebRtcHideLocalIpsWithMdns,OptimizationHints,MediaRouter,Translate',
  '--use-fake-device-for-media-stream=fps=30', '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection', '--disable-dev-shm-usage',
  '--ignore-certificate-errors',
];
