// One headless Chromium that opens pages on request, for bench/shaped_subscriber.py.
//
//   node chromium_tabs.js LIFETIME_MS [extra Chromium flag ...]
//
// Debian's Chromium (executablePath /usr/bin/chromium, never a download) with the
// flags every test page runs with (tests/interop/chromium_flags.js) plus the extra
// ones given.  Each line on stdin is `{"id": ..., "url": ..., "timeout": ms}`: the
// page is opened in a new tab, its console lines are echoed as `CONSOLE <id> <text>`,
// and when it sets `window.__result` (or the timeout passes) this prints
// `RESULT <id> <json>` (or `ERROR <id> <message>`) and closes the tab.  Several tabs
// may be open at once.  The browser closes at the end of stdin, or after
// LIFETIME_MS whatever happens: nothing outlives the bench.
const path = require('path');
const readline = require('readline');
const INTEROP = path.join(__dirname, '..', '..', 'tests', 'interop');
const { chromium } = require(path.join(INTEROP, 'node_modules', 'playwright-core'));
const CHROMIUM_FLAGS = require(path.join(INTEROP, 'chromium_flags'));
const fs = require('fs');
const os = require('os');

async function main() {
  const [lifetimeArg, ...extra] = process.argv.slice(2);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'realtime-bench-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS.concat(extra),
  });
  let closing = false;
  const close = async (code) => {
    if (closing) return;
    closing = true;
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
    process.exit(code);
  };
  setTimeout(() => { console.log('ERROR - lifetime over'); close(1); },
             parseInt(lifetimeArg || '300000', 10));
  const open = [];
  console.log('READY');
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    const { id, url, timeout } = JSON.parse(line);
    open.push((async () => {
      const page = await context.newPage();
      page.on('console', (msg) => console.log(`CONSOLE ${id} ${msg.text()}`));
      page.on('pageerror', (err) => console.log(`PAGEERROR ${id} ${err.message}`));
      try {
        await page.goto(url);
        await page.waitForFunction(() => window.__result !== undefined, null,
                                   { timeout: timeout || 60000, polling: 250 });
        console.log(`RESULT ${id} ` + JSON.stringify(await page.evaluate(() => window.__result)));
      } catch (err) {
        console.log(`ERROR ${id} ` + err.message.split('\n')[0]);
      } finally {
        await page.close().catch(() => {});
      }
    })());
  });
  lines.on('close', async () => { await Promise.allSettled(open); close(0); });
}

main().catch((err) => { console.log('ERROR - ' + err.message.split('\n')[0]); process.exit(1); });
