// Browser test: a video starts playing in the web page while the farm is still transcoding it.
//
// Starts a real `zerofarm serve`, uploads a 40 s 720p clip over the API (three rungs: the job
// runs for a while on any machine), opens the video's page in Chromium and waits for the
// player: it appears as soon as the video is playable, and playback advances (currentTime past
// 1 s) while the API still says "processing". The page shows how far the playable part
// reaches meanwhile; once the video is ready that note goes away and the player keeps playing.
//
// Environment and exit status: harness.mjs.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { artifactDir, check, log, readyTimeoutMs, started, TestFailure, waitFor, runBrowserTest } from './harness.mjs';

const SECONDS = 40;

function makeLongerClip() {
  const file = path.join(artifactDir, `progressive-${SECONDS}s.mp4`);
  if (fs.existsSync(file)) return file;
  const tmp = `${file}.${process.pid}.part.mp4`;
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=30:duration=${SECONDS}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${SECONDS}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '60',
    '-c:a', 'aac', '-b:a', '96k', '-shortest', '-movflags', '+faststart', tmp], { stdio: 'inherit' });
  if (r.error || r.status !== 0) throw new TestFailure(`ffmpeg could not make the clip ${file}`);
  fs.renameSync(tmp, file);
  return file;
}

async function run(serve, browser) {
  const auth = { Authorization: `Bearer ${serve.token}` };
  const clip = makeLongerClip();
  const getVideo = async (id) => (await fetch(`${serve.base}/v1/videos/${id}`, { headers: auth })).json();

  const up = await fetch(`${serve.base}/v1/videos?filename=progressive.mp4`, {
    method: 'POST', headers: { ...auth, 'Content-Type': 'video/mp4' }, body: fs.readFileSync(clip),
  });
  check(up.status === 201, `upload answered ${up.status}`);
  const { id } = await up.json();
  const uploaded = Date.now();
  log(`uploaded video ${id}`);

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${serve.base}/#token=${serve.token}`);
  await page.waitForSelector('#app:not([hidden])');
  await page.goto(`${serve.base}/#/videos/${id}`);

  // The player appears once the video is playable, long before it is ready.
  await waitFor('the player to appear', async () => {
    const v = await getVideo(id);
    if (v.status === 'failed') throw new TestFailure(`the video failed: ${JSON.stringify(v.error)}`);
    if (v.status === 'ready') throw new TestFailure('the video was ready before the page could play it');
    return page.$('#player-card:not([hidden])');
  }, readyTimeoutMs, 200);
  log(`player shown ${((Date.now() - uploaded) / 1000).toFixed(1)} s after the upload`);
  await page.evaluate(() => document.querySelector('#player').play());
  await waitFor('playback to advance past 1 s', () =>
    page.evaluate(() => document.querySelector('#player').currentTime > 1.0), 60000, 100);
  const v = await getVideo(id);
  check(v.status === 'processing',
    `the video is ${v.status} once playback has advanced: nothing was played while it was processing`);
  check(v.playable === true && v.playable_seconds > 0, `the API says playable ${v.playable}, ${v.playable_seconds} s`);
  const note = await page.evaluate(() => ({
    hidden: document.querySelector('#playable').hidden,
    text: document.querySelector('#playable-text').textContent,
  }));
  check(!note.hidden && /plays to/.test(note.text), `the page does not say how far it plays: "${note.text}"`);
  log(`playing while processing (${v.playable_seconds} s of ${v.duration_seconds} s playable): "${note.text}"`);
  await page.screenshot({ path: path.join(artifactDir, 'progressive-playing.png'), fullPage: true });

  // Once ready the note goes; playback never stopped for good.
  await waitFor('the video to be ready', async () => {
    const now = await getVideo(id);
    if (now.status === 'failed') throw new TestFailure(`the video failed: ${JSON.stringify(now.error)}`);
    return now.status === 'ready';
  }, readyTimeoutMs, 500);
  await waitFor('the playable note to go', () => page.$('#playable[hidden]'), 10000);
  const t0 = await page.evaluate(() => document.querySelector('#player').currentTime);
  await waitFor('playback to go on', () => page.evaluate((t) => {
    const p = document.querySelector('#player');
    return p.currentTime > t + 0.5 || p.ended;
  }, t0), 60000, 100);
  check(pageErrors.length === 0, `errors on the page: ${pageErrors.join('; ')}`);
  log(`ready after ${((Date.now() - started) / 1000).toFixed(0)} s; playback went on`);
  await context.close();
}

await runBrowserTest('progressive', run);
