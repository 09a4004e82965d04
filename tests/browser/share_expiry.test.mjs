// Browser test: a shared signed playback link plays in Chromium with no API token, and stops
// playing once it has expired.
//
// Starts a real `zerofarm serve`, uploads a clip over the API (with the token, from Node),
// waits for ready, asks for a signed playback link that lives EXPIRES_IN seconds, then opens the
// link's share page (embed.html?v=...) in a fresh browser context that never saw the token:
// playback advances, no request carries the token. After the expiry the same page, reloaded,
// refuses to play (HTTP 403, "expired" shown) and a segment request answers 403.
//
// Environment: as upload_play.test.mjs (ZF_ZEROFARM, ZF_WEB_DIR, ZF_NODE_MODULES, ZF_CLIP,
// ZF_ARTIFACT_DIR, ZF_CHROMIUM, ZF_SERVE_ARGS, ZF_READY_TIMEOUT). Exit 0 pass, 1 fail, 77 skip.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const SKIP = 77;
const EXPIRES_IN = 25;  // seconds the shared link lives
const env = process.env;
const chromiumPath = env.ZF_CHROMIUM || '/usr/bin/chromium';
const artifactDir = path.resolve(env.ZF_ARTIFACT_DIR || path.join(os.tmpdir(), 'zerofarm-browser-test'));
const readyTimeoutMs = Number(env.ZF_READY_TIMEOUT || 240) * 1000;
const started = Date.now();

function log(msg) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}`);
}
class TestFailure extends Error {}
function check(cond, msg) {
  if (!cond) throw new TestFailure(msg);
}

if (!fs.existsSync(chromiumPath)) {
  console.log(`SKIP: no Chromium at ${chromiumPath}`);
  process.exit(SKIP);
}
for (const name of ['ZF_ZEROFARM', 'ZF_WEB_DIR', 'ZF_NODE_MODULES']) {
  if (!env[name]) {
    console.error(`browser test: ${name} is not set (tests/CMakeLists.txt sets it)`);
    process.exit(1);
  }
}
const { chromium } = await import(
  pathToFileURL(path.join(env.ZF_NODE_MODULES, 'playwright-core', 'index.mjs')).href);
fs.mkdirSync(artifactDir, { recursive: true });
const clip = path.resolve(env.ZF_CLIP || path.join(artifactDir, 'clip.mp4'));

function makeClip(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.share.part.mp4`;
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=854x480:rate=30:duration=8',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=8',
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '60',
    '-c:a', 'aac', '-b:a', '96k', '-shortest', '-movflags', '+faststart', tmp], { stdio: 'inherit' });
  if (r.error || r.status !== 0) throw new TestFailure(`ffmpeg could not make the clip ${file}`);
  fs.renameSync(tmp, file);
}

async function startServe(dataDir) {
  const extra = (env.ZF_SERVE_ARGS || '').split(/\s+/).filter(Boolean);
  const args = ['serve', '--data', dataDir, '--listen', '127.0.0.1:0', '--web', env.ZF_WEB_DIR,
    '--chunk-seconds', '2', ...extra];
  const logFile = fs.createWriteStream(path.join(artifactDir, 'share-serve.log'));
  const child = spawn(env.ZF_ZEROFARM, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited = null;
  const info = await new Promise((resolve, reject) => {
    const onData = (chunk) => {
      logFile.write(chunk);
      out += chunk.toString();
      const t = out.match(/^token: (\S+)$/m);
      const l = out.match(/listening on (http:\/\/\S+?)[\s(]/);
      if (t && l) resolve({ token: t[1], base: l[1] });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      reject(new TestFailure(`zerofarm serve exited (${signal || code}):\n${out.trim()}`));
    });
    setTimeout(() => reject(new TestFailure(`serve did not start within 60 s:\n${out}`)), 60000).unref();
  });
  log(`serve is up at ${info.base}`);
  return {
    ...info,
    async stop() {
      if (exited) return exited;
      const gone = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      const r = await gone;
      clearTimeout(timer);
      logFile.end();
      return r;
    },
  };
}

async function waitFor(what, fn, timeoutMs, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new TestFailure(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function run(serve, browser) {
  const auth = { Authorization: `Bearer ${serve.token}` };
  // 1. Upload over the API (signed is the default policy) and wait for ready.
  const up = await fetch(`${serve.base}/v1/videos?ladder=360p&filename=share.mp4`, {
    method: 'POST', headers: { ...auth, 'Content-Type': 'video/mp4' }, body: fs.readFileSync(clip),
  });
  check(up.status === 201, `upload answered ${up.status}`);
  const { id } = await up.json();
  const video = await waitFor('the video to be ready', async () => {
    const v = await (await fetch(`${serve.base}/v1/videos/${id}`, { headers: auth })).json();
    if (v.status === 'failed') throw new TestFailure(`the video failed: ${JSON.stringify(v.error)}`);
    return v.status === 'ready' ? v : null;
  }, readyTimeoutMs, 500);
  check(video.playback_policy === 'signed', `policy is ${video.playback_policy}, not signed`);

  // 2. A link that lives EXPIRES_IN seconds.
  const shortLived = await (await fetch(`${serve.base}/v1/videos/${id}?expires_in=${EXPIRES_IN}`,
    { headers: auth })).json();
  const { share, id: playbackId, hls } = shortLived.playback;
  const expires = Number(playbackId.split('.')[2]) * 1000;
  check(share.startsWith(`${serve.base}/embed.html?v=`), `share link ${share}`);
  check(!share.includes(serve.token) && !hls.includes(serve.token), 'the link carries the API token');
  log(`shared link ${share.replace(/[0-9a-f]{64}/, '…')} (expires in ${EXPIRES_IN} s)`);

  // 3. A fresh context: no localStorage, no token. The page plays.
  const context = await browser.newContext({ viewport: { width: 800, height: 450 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const leaks = [];
  const segmentUrls = [];
  page.on('request', (r) => {
    const h = r.headers();
    if (h.authorization || r.url().includes(serve.token)) leaks.push(r.url());
    if (/\.ts$/.test(r.url())) segmentUrls.push(r.url());
  });
  await page.goto(share);
  await page.evaluate(() => document.querySelector('#embed-player').play());
  await waitFor('playback to advance past 1 s', () => page.evaluate(() =>
    document.querySelector('#embed-player').currentTime > 1.0), 60000);
  const playing = await page.evaluate(() => {
    const v = document.querySelector('#embed-player');
    return { t: v.currentTime, h: v.videoHeight, state: document.body.dataset.state };
  });
  log(`plays with no token: currentTime ${playing.t.toFixed(2)} s, ${playing.h} lines`);
  check(Date.now() < expires, 'the link expired before playback could be checked (machine too slow?)');
  check(segmentUrls.length > 0, 'no segment was fetched');
  await page.screenshot({ path: path.join(artifactDir, 'share-playing.png') });

  // 4. After the expiry: the same link no longer plays.
  const wait = expires - Date.now() + 1000;
  log(`waiting ${(wait / 1000).toFixed(1)} s for the link to expire`);
  await new Promise((r) => setTimeout(r, Math.max(0, wait)));
  const segStatus = await page.evaluate(async (u) => (await fetch(u, { cache: 'no-store' })).status,
    segmentUrls[0]);
  check(segStatus === 403, `a segment of the expired link answered ${segStatus}`);
  log(`a segment of the expired link answers ${segStatus}; opening the link again`);
  await page.close();
  log('first page closed');
  // The same link, opened anew (a second visitor, again without any token).
  const page2 = await context.newPage();
  page2.on('pageerror', (e) => pageErrors.push(e.message));
  await page2.goto(share, { waitUntil: 'domcontentloaded' });
  log('second page loaded');
  await page2.waitForSelector('body[data-state="error"]', { timeout: 30000 });
  const message = await page2.textContent('#embed-error');
  check(/expired/.test(message), `the page says "${message}" after the expiry`);
  await new Promise((r) => setTimeout(r, 1500));
  const after = await page2.evaluate(() => {
    const v = document.querySelector('#embed-player');
    return { t: v.currentTime, buffered: v.buffered.length, readyState: v.readyState };
  });
  check(after.t === 0 && after.buffered === 0 && after.readyState === 0,
    `the expired link still loaded media (currentTime ${after.t}, ${after.buffered} buffered ranges)`);
  log(`after expiry: "${message}", nothing plays`);
  await page2.screenshot({ path: path.join(artifactDir, 'share-expired.png') });

  check(leaks.length === 0, `requests carried the API token: ${leaks.join(', ')}`);
  check(pageErrors.length === 0, `the page threw: ${pageErrors.join('; ')}`);
  await context.close();
}

let serve = null;
let browser = null;
let dataDir = null;
let failed = false;
const watchdog = setTimeout(() => {
  console.error('browser test: overall time limit reached');
  process.exit(1);
}, readyTimeoutMs + 5 * 60000);
watchdog.unref();
try {
  if (!fs.existsSync(clip)) makeClip(clip);
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerofarm-share-'));
  serve = await startServe(dataDir);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--disable-dev-shm-usage'],
  });
  await run(serve, browser);
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e instanceof TestFailure ? e.message : e.stack || e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (serve) await serve.stop();
  if (dataDir && !failed) fs.rmSync(dataDir, { recursive: true, force: true });
}
console.log(failed ? 'browser test: FAILED' : 'browser test: passed');
process.exit(failed ? 1 : 0);
