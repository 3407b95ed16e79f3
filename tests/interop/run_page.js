// Open one page in Debian's headless Chromium and print what it reports.
//
//   node run_page.js URL TIMEOUT_MS
//
// The page signals completion by setting `window.__result` (any JSON value);
// this script prints `RESULT <json>` and exits 0, or prints `ERROR <message>`
// and exits 1 on timeout.  Console lines of the page are echoed as `CONSOLE`.
// Never downloads a browser: executablePath is /usr/bin/chromium.
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

async function main() {
  const [url, timeoutArg] = process.argv.slice(2);
  const timeout = parseInt(timeoutArg || '30000', 10);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'realtime-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      // Test traffic stays on this machine: no name resolves but localhost
      // (pages and the API are on 127.0.0.1 literals), no background fetches,
      // and no mDNS (.local) host candidates, whose registration is multicast.
      // REALTIME_EXCLUDE (comma-separated literals) adds addresses a test made itself,
      // e.g. the namespaces of tests/cluster.
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , EXCLUDE [::1]'
        + (process.env.REALTIME_EXCLUDE || '').split(',').filter(Boolean).map(a => ` , EXCLUDE ${a}`).join(''),
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-default-apps', '--disable-domain-reliability', '--disable-breakpad',
      '--disable-client-side-phishing-detection', '--no-default-browser-check',
      '--metrics-recording-only', '--no-pings',
      '--disable-features=WebRtcHideLocalIpsWithMdns,OptimizationHints,MediaRouter,Translate',
      // The fake camera runs at 20 fps unless told otherwise: 30 gives a viewer
      // check of >= 20 fps decoded a margin.  Remote audio is played out
      // (pages attach it to an <audio> element) so its stats count samples.
      '--use-fake-device-for-media-stream=fps=30', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      '--allow-loopback-in-peer-connection', '--disable-dev-shm-usage',
      '--ignore-certificate-errors',
    ],
  });
  let code = 0;
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on('console', (msg) => console.log('CONSOLE ' + msg.text()));
    page.on('pageerror', (err) => console.log('PAGEERROR ' + err.message));
    await page.goto(url);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout });
    const result = await page.evaluate(() => window.__result);
    console.log('RESULT ' + JSON.stringify(result));
  } catch (err) {
    console.log('ERROR ' + err.message.split('\n')[0]);
    code = 1;
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.exit(code);
}

main();
