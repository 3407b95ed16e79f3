// Drive the service's demo page (realtime/demo/) in Debian's headless Chromium as a person would.
//
//   node run_demo.js URL TIMEOUT_MS [SCREENSHOT.png]
//
// Clicks "Start camera" (fake camera and microphone), waits until the video received
// through the SFU plays, clicks the simulcast buttons q, f, h and waits after each for
// the received width to be in that layer's range (q <= 400 < h <= 800 < f), sends a
// message on the DataChannel echo and waits for it to come back, then (optionally)
// saves a screenshot.  Prints `RESULT <json>` (exit 0) or `ERROR <message>` (exit 1).
// Chromium runs with chromium_flags.js: nothing resolves but localhost, fake media.
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');
const CHROMIUM_FLAGS = require('./chromium_flags');

const RANGES = {q: [1, 400], h: [401, 800], f: [801, 100000]};

async function main() {
  const [url, timeoutArg, screenshot] = process.argv.slice(2);
  const timeout = parseInt(timeoutArg || '60000', 10);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'realtime-demo-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: {width: 1200, height: 1100},
    args: CHROMIUM_FLAGS,
  });
  const result = {steps: []};
  let code = 0;
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(timeout);
    page.on('console', (msg) => console.log('CONSOLE ' + msg.text()));
    page.on('pageerror', (err) => console.log('PAGEERROR ' + err.message));
    await page.goto(url);
    await page.click('#start');
    await page.waitForFunction(() => window.demo.state === 'live' || window.demo.error);
    const error = await page.evaluate(() => window.demo.error);
    if (error) throw new Error('the page says: ' + error);

    // the video received through the SFU plays: frames decoded and the element's clock moves
    await page.waitForFunction(() => (window.demo.stats.pull.framesDecoded || 0) > 0
      && document.getElementById('remote').videoWidth > 0);
    const before = await page.evaluate(() => ({frames: window.demo.stats.pull.framesDecoded,
      time: document.getElementById('remote').currentTime, at: performance.now()}));
    await page.waitForTimeout(3000);
    const after = await page.evaluate(() => ({frames: window.demo.stats.pull.framesDecoded,
      time: document.getElementById('remote').currentTime, at: performance.now()}));
    result.playback = {fps: (after.frames - before.frames) / ((after.at - before.at) / 1000),
                       playedSeconds: after.time - before.time};

    for (const rid of ['q', 'f', 'h']) {
      const widthBefore = await page.evaluate(() => window.demo.stats.pull.width);
      const clicked = Date.now();
      await page.click(`#layer-${rid}`);
      const [low, high] = RANGES[rid];
      await page.waitForFunction(([low, high]) => {
        const width = document.getElementById('remote').videoWidth;
        return width >= low && width <= high && window.demo.stats.pull.width >= low
          && window.demo.stats.pull.width <= high;
      }, [low, high], {timeout: 20000});
      const shown = await page.evaluate(() => ({
        statsWidth: window.demo.stats.pull.width, layer: window.demo.stats.pull.layer,
        kbps: Math.round(window.demo.stats.pull.kbps || 0),
        videoWidth: document.getElementById('remote').videoWidth,
        active: document.querySelector('button.layer.active')?.dataset.rid}));
      result.steps.push({rid, widthBefore, ...shown, ms: Date.now() - clicked});
    }

    await page.fill('#echo-text', 'hello from the test');
    await page.click('#echo-send');
    await page.waitForFunction(() => window.demo.echo.messages.includes('hello from the test'));
    await page.waitForTimeout(2500);  // a few statistics samples at layer h for the picture
    result.echo = await page.evaluate(() => window.demo.echo);
    result.demo = await page.evaluate(() => ({push: window.demo.push, pull: window.demo.pull,
      videoMid: window.demo.videoMid, calls: window.demo.calls, stats: window.demo.stats,
      table: document.getElementById('stats').innerText}));
    if (screenshot) await page.screenshot({path: screenshot, fullPage: true});
    console.log('RESULT ' + JSON.stringify(result));
  } catch (err) {
    console.log('ERROR ' + err.message.split('\n')[0] + ' ' + JSON.stringify(result));
    code = 1;
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.exit(code);
}

main();
