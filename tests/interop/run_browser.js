// Open one page in Debian's headless Firefox ESR (or Chromium) and print what it reports.
//
//   node run_browser.js firefox|chromium URL TIMEOUT_MS
//
// The sibling of run_page.js (Chromium through playwright-core) with the same
// conventions, for the Firefox tests and the calls between the two: the page
// signals completion by setting `window.__result` (any JSON value); this
// script prints `RESULT <json>` and exits 0, or prints `ERROR <message>` and
// exits 1 on timeout.  Console lines of the page are echoed as `CONSOLE`.
//
// Driven by puppeteer-core over WebDriver BiDi.  Never downloads a browser:
// executablePath is /usr/bin/firefox-esr (or $FIREFOX).  The profile's
// preferences give WebRTC fake devices without prompts and loopback ICE
// candidates (the server's only candidate is on loopback, so every check
// Firefox sends goes there), and keep Firefox off the network: every http(s) request to a
// host other than localhost goes to a dead proxy (so Firefox resolves no
// other names itself), and updates, telemetry, captive-portal and
// connectivity probes, safe browsing, remote settings, DNS prefetch and DoH,
// and plugin (OpenH264) downloads are off.
//
// `chromium` runs /usr/bin/chromium (or $CHROMIUM) through puppeteer-core over
// CDP with run_page.js's flags, its fake camera at 30 fps (it defaults to 20,
// below what the playback checks require) and a host resolver that resolves
// nothing but localhost.
const puppeteer = require('puppeteer-core');

const PREFS = {
  // WebRTC on loopback with fake devices and no permission prompt
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'permissions.default.camera': 1,
  'permissions.default.microphone': 1,
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.default_iceservers': '[]',
  'media.peerconnection.ice.no_host': false,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  // off the network: a dead proxy for everything but localhost, no DNS of our own
  'network.proxy.type': 1,
  'network.proxy.http': '127.0.0.1',
  'network.proxy.http_port': 9,
  'network.proxy.ssl': '127.0.0.1',
  'network.proxy.ssl_port': 9,
  'network.proxy.socks_remote_dns': true,
  'network.proxy.no_proxies_on': 'localhost, 127.0.0.1, [::1]',
  'network.dns.disablePrefetch': true,
  'network.dns.disableIPv6': false,
  'network.trr.mode': 5,
  'network.predictor.enabled': false,
  'network.prefetch-next': false,
  'network.http.speculative-parallel-limit': 0,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.notify.checkForProxies': false,
  'security.OCSP.enabled': 0,
  'app.update.enabled': false,
  'app.update.auto': false,
  'app.update.disabledForTesting': true,
  'app.normandy.enabled': false,
  'extensions.update.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'extensions.blocklist.enabled': false,
  'media.gmp-manager.updateEnabled': false,
  'media.gmp-manager.url': '',
  'media.gmp-gmpopenh264.autoupdate': false,
  'media.gmp-gmpopenh264.enabled': false,
  'media.gmp-widevinecdm.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.downloads.remote.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'browser.safebrowsing.provider.google4.updateURL': '',
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'browser.search.update': false,
  'browser.topsites.contile.enabled': false,
  'browser.newtabpage.enabled': false,
  'browser.ping-centre.telemetry': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.server': '',
  'services.settings.server': 'data:,#remote-settings-dummy/v1',
  'geo.provider.network.url': '',
  'identity.fxaccounts.enabled': false,
};

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream=fps=30', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-dev-shm-usage',
  '--ignore-certificate-errors', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]',
];

function launchOptions(browser) {
  if (browser === 'chromium') {
    return {browser: 'chrome', executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
            headless: true, args: CHROMIUM_ARGS, timeout: 60000};
  }
  return {browser: 'firefox', protocol: 'webDriverBiDi', headless: true, timeout: 60000,
          executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr', extraPrefsFirefox: PREFS};
}

async function main() {
  const [which, url, timeoutArg] = process.argv.slice(2);
  const timeout = parseInt(timeoutArg || '30000', 10);
  let browser;
  let code = 0;
  try {
    browser = await puppeteer.launch(launchOptions(which));
    const page = (await browser.pages())[0] || await browser.newPage();
    page.on('console', (msg) => console.log('CONSOLE ' + msg.text()));
    page.on('pageerror', (err) => console.log('PAGEERROR ' + err.message));
    await page.goto(url);
    await page.waitForFunction(() => window.__result !== undefined, {timeout, polling: 200});
    const result = await page.evaluate(() => window.__result);
    console.log('RESULT ' + JSON.stringify(result));
  } catch (err) {
    console.log('ERROR ' + String(err && err.message || err).split('\n')[0]);
    code = 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  process.exit(code);
}

main();
