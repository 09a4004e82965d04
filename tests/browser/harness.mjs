// What the browser tests share: their environment, a synthetic clip made with the ffmpeg CLI,
// a real `zerofarm serve` on a free port, waiting with a deadline, and the run itself
// (Chromium launched, the server stopped and checked, exit 0 pass, 1 fail, 77 skip).
//
// Environment (tests/CMakeLists.txt sets it):
//   ZF_ZEROFARM       the zerofarm executable (zerofarm-worker beside it)
//   ZF_WEB_DIR        the built page (share/zerofarm/web), given to serve as --web
//   ZF_NODE_MODULES   node_modules holding playwright-core
//   ZF_CLIP           the clip to upload; made with the ffmpeg CLI when the file is missing
//   ZF_ARTIFACT_DIR   where screenshots and the server's log go
//   ZF_CHROMIUM       the browser (default /usr/bin/chromium)
//   ZF_SERVE_ARGS     extra arguments for serve, split on spaces (e.g. --unsandboxed)
//   ZF_READY_TIMEOUT  seconds to wait for `ready` (default 240: the machine may be loaded)

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const SKIP = 77;
const env = process.env;
const chromiumPath = env.ZF_CHROMIUM || '/usr/bin/chromium';
export const artifactDir = path.resolve(env.ZF_ARTIFACT_DIR || path.join(os.tmpdir(), 'zerofarm-browser-test'));
export const readyTimeoutMs = Number(env.ZF_READY_TIMEOUT || 240) * 1000;
export const started = Date.now();  // when the test began, for the times it logs

export function log(msg) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${t}s] ${msg}`);
}

export class TestFailure extends Error {}
export function check(cond, msg) {
  if (!cond) throw new TestFailure(msg);
}

function need(name) {
  const v = env[name];
  if (!v) {
    console.error(`browser test: ${name} is not set (tests/CMakeLists.txt sets it)`);
    process.exit(1);
  }
  return v;
}

if (!fs.existsSync(chromiumPath)) {
  console.log(`SKIP: no Chromium at ${chromiumPath} (apt-get install chromium, or ./scripts/setup.sh)`);
  process.exit(SKIP);
}
const zerofarm = need('ZF_ZEROFARM');
const webDir = need('ZF_WEB_DIR');
const nodeModules = need('ZF_NODE_MODULES');
export const clip = path.resolve(env.ZF_CLIP || path.join(artifactDir, 'clip.mp4'));
for (const [what, p] of [['zerofarm', zerofarm], ['the web page', path.join(webDir, 'index.html')],
  ['playwright-core', path.join(nodeModules, 'playwright-core', 'package.json')]]) {
  if (!fs.existsSync(p)) {
    console.error(`browser test: ${what} is missing: ${p} (build the zerofarm and zerofarm-web targets)`);
    process.exit(1);
  }
}
const { chromium } = await import(pathToFileURL(path.join(nodeModules, 'playwright-core', 'index.mjs')).href);

fs.mkdirSync(artifactDir, { recursive: true });

// --- the clip -----------------------------------------------------------------------------
// 854x480 so the default ladder keeps two rungs (480p and 360p: rungs above the source are
// skipped), 8 s of testsrc2 + a sine tone, H.264 + AAC in MP4. Written under a name of this
// process and renamed, so tests that start together never read each other's half-made file.
function makeClip(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.part.mp4`;
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=854x480:rate=30:duration=8',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=8',
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '60',
    '-c:a', 'aac', '-b:a', '96k', '-shortest', '-movflags', '+faststart', tmp], { stdio: 'inherit' });
  if (r.error || r.status !== 0) throw new TestFailure(`ffmpeg could not make the clip ${file}`);
  fs.renameSync(tmp, file);
}

// --- the server ---------------------------------------------------------------------------
async function startServe(dataDir, logName) {
  const extra = (env.ZF_SERVE_ARGS || '').split(/\s+/).filter(Boolean);
  const args = ['serve', '--data', dataDir, '--listen', '127.0.0.1:0', '--web', webDir,
    '--chunk-seconds', '2', ...extra];
  log(`starting ${zerofarm} ${args.join(' ')}`);
  const logFile = fs.createWriteStream(path.join(artifactDir, logName));
  const child = spawn(zerofarm, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let token = null;
  let base = null;
  let exited = null;
  const ready = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      out += chunk.toString();
      const t = out.match(/^token: (\S+)$/m);
      const l = out.match(/listening on (http:\/\/\S+?)[\s(]/);
      if (t) token = t[1];
      if (l) base = l[1];
      if (token && base) resolve();
    };
    child.stdout.on('data', (c) => { logFile.write(c); onData(c); });
    child.stderr.on('data', (c) => { logFile.write(c); out += c.toString(); });
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      reject(new TestFailure(`zerofarm serve exited (${signal || code}) before it was ready:\n${out.trim()}`));
    });
    setTimeout(() => reject(new TestFailure(
      `zerofarm serve printed no token and address within 60 s:\n${out.trim()}`)), 60000).unref();
  });
  await ready;
  log(`serve is up at ${base}`);
  return {
    base,
    token,
    isRunning: () => exited === null,
    tail: () => out.trim().split('\n').slice(-15).join('\n'),
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

let serve = null;

// Polls `fn` until it returns something truthy (returned) or `timeoutMs` passes; fails at once
// when the server has died.
export async function waitFor(what, fn, timeoutMs, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    if (serve && !serve.isRunning()) {
      throw new TestFailure(`zerofarm serve died while waiting for ${what}:\n${serve.tail()}`);
    }
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new TestFailure(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// Runs `run(serve, browser)` against a fresh server (data in a temporary folder named after
// `name`, its log in artifacts/<name>-serve.log) and headless Chromium, then exits: 0 when run
// passed and the server stopped cleanly on SIGTERM, 1 otherwise. Never returns.
export async function runBrowserTest(name, run) {
  let browser = null;
  let dataDir = null;
  let failed = false;
  const watchdog = setTimeout(() => {
    console.error('browser test: overall time limit reached');
    process.exitCode = 1;
    if (serve) serve.stop().finally(() => process.exit(1)); else process.exit(1);
  }, readyTimeoutMs + 5 * 60000);
  watchdog.unref();

  try {
    if (!fs.existsSync(clip)) {
      log(`making the clip ${clip}`);
      makeClip(clip);
    }
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `zerofarm-${name}-`));
    serve = await startServe(dataDir, `${name}-serve.log`);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--disable-dev-shm-usage'],
    });
    log(`Chromium ${browser.version()}`);
    await run(serve, browser);
  } catch (e) {
    failed = true;
    console.error(`FAIL: ${e instanceof TestFailure ? e.message : e.stack || e}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (serve) {
      const r = await serve.stop();
      log(`serve stopped (${r.signal || `exit ${r.code}`})`);
      if (!failed && r.code !== 0 && r.signal !== 'SIGTERM') {
        failed = true;
        console.error(`FAIL: zerofarm serve did not stop cleanly on SIGTERM (${r.signal || r.code})`);
      }
    }
    if (dataDir) {
      if (failed) log(`kept the server's data for a look: ${dataDir}`);
      else fs.rmSync(dataDir, { recursive: true, force: true });
    }
    log(`artifacts in ${artifactDir}`);
  }
  console.log(failed ? 'browser test: FAILED' : 'browser test: passed');
  process.exit(failed ? 1 : 0);
}
