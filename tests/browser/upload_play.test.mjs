// Browser test: a clip uploaded through the web page plays and switches rendition.
//
// Drives Debian's Chromium with playwright-core against a real `zerofarm serve` (its own data
// directory, a free port): enters the token the server printed, uploads a synthetic clip
// through the page's file input (tus), waits in the farm view until the video is ready,
// plays the HLS stream (currentTime advances), switches rendition (the level and the decoded
// frame size change, playback goes on), checks the MP4 link and the thumbnail, saves
// screenshots, then drops a non-video file on the page (the drag-and-drop path) and checks
// that it fails with its reason shown.
//
// Environment and exit status: harness.mjs.

import path from 'node:path';

import {
  artifactDir, check, clip, log, readyTimeoutMs, started, TestFailure, waitFor, runBrowserTest,
} from './harness.mjs';

async function run(serve, browser) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') log(`page console: ${m.text()}`); });
  // Everything comes from zerofarm itself: the page works offline, no CDN.
  const foreign = [];
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(`${serve.base}/`) && !/^(data|blob):/.test(u)) foreign.push(u);
  });

  // 1. The page is served by zerofarm, with its packages, and asks for the token.
  await page.goto(`${serve.base}/`);
  await page.waitForSelector('#token-panel:not([hidden])');
  const vendor = await page.evaluate(() => ({ hls: typeof window.Hls, tus: typeof window.tus }));
  check(vendor.hls === 'function' && vendor.tus === 'object',
    `vendor scripts not loaded from zerofarm (Hls: ${vendor.hls}, tus: ${vendor.tus})`);
  await page.fill('#token-input', 'zf_wrong');
  await page.click('#token-submit');
  await page.waitForSelector('#token-error:not([hidden])');
  log(`a wrong token is refused: "${await page.textContent('#token-error')}"`);
  await page.fill('#token-input', serve.token);
  await page.click('#token-submit');
  await page.waitForSelector('#app:not([hidden])');
  check(await page.evaluate(() => localStorage.getItem('zerofarm.token')) === serve.token,
    'the token is not kept in localStorage');
  log('token accepted');

  // 2. Upload through the file input; the page opens the video's page once the server names it.
  await page.setInputFiles('#file-input', clip);
  const id = await waitFor('the page to open the uploaded video',
    async () => (page.url().match(/#\/videos\/([^/?#]+)/) || [])[1], 60000);
  log(`upload created video ${id}`);
  await waitFor('the upload to complete', () => page.$('#uploads .upload[data-state="done"]'), 120000);
  const pct = await page.textContent('#uploads .upload[data-state="done"] .upload-pct');
  check(pct.trim() === '100%', `upload progress ends at ${pct}, not 100%`);
  log('upload complete (100%)');

  // 3. The farm view fills in while the farm works; wait for ready.
  let sawRunning = false;
  const status = await waitFor('the video to be ready (farm view)', async () => {
    const s = await page.evaluate(() => ({
      status: document.querySelector('#video-page').dataset.status,
      cells: [...document.querySelectorAll('#farm .cell')].map((c) => c.dataset.state),
    }));
    if (!sawRunning && s.cells.includes('running')) {
      sawRunning = true;
      await page.screenshot({ path: path.join(artifactDir, 'farm-running.png'), fullPage: true });
      log(`farm view while running: ${s.cells.join(' ')}`);
    }
    if (s.status === 'failed') {
      throw new TestFailure(`the video failed: ${await page.textContent('#v-error-text')}`);
    }
    return s.status === 'ready' ? s : null;
  }, readyTimeoutMs, 500);
  log(`ready after ${((Date.now() - started) / 1000).toFixed(0)} s; chunks: ${status.cells.join(' ')}`);

  // Every chunk cell is done and names its node and time.
  const cells = await page.$$eval('#farm .cell', (els) => els.map((c) => ({
    index: c.dataset.index, state: c.dataset.state,
    node: c.querySelector('.cell-node').textContent, time: c.querySelector('.cell-time').textContent,
  })));
  check(cells.length >= 2, `the farm view shows ${cells.length} chunk cells`);
  for (const c of cells) {
    check(c.state === 'done', `chunk ${c.index} is ${c.state} in a ready video`);
    check(c.node && c.node !== '–', `chunk ${c.index} names no node`);
    check(/\d+(\.\d+)? s/.test(c.time), `chunk ${c.index} shows no time ("${c.time}")`);
  }
  log(`farm view: ${cells.map((c) => `#${c.index}@${c.node} ${c.time}`).join(', ')}`);
  // A tooltip with the details appears on hover.
  await page.hover('#farm .cell');
  await page.waitForSelector('#tooltip:not([hidden])');
  const tip = await page.textContent('#tooltip');
  check(/node/.test(tip) && /wall/.test(tip), `the chunk tooltip has no details: "${tip}"`);
  check(!/null|undefined|NaN/.test(tip), `the chunk tooltip shows a missing value: "${tip}"`);
  await page.mouse.move(0, 0);
  await page.waitForSelector('#tooltip', { state: 'hidden' });

  // 4. The player: levels from the master playlist, playback advances.
  await page.waitForSelector('#player-card:not([hidden])');
  const levels = await waitFor('the rendition list', async () => {
    const opts = await page.$$eval('#rendition option', (os) => os.map((o) => ({ value: o.value, label: o.textContent })));
    return opts.length >= 3 ? opts : null;  // "Auto" + at least two renditions
  }, 30000);
  log(`renditions: ${levels.map((l) => l.label).join(' | ')}`);
  await page.evaluate(() => document.querySelector('#player').play());
  await waitFor('playback to advance past 1 s', () =>
    page.evaluate(() => document.querySelector('#player').currentTime > 1.0), 60000);
  // hls.js reports a level switch when it starts loading the new level, while the frames on
  // screen still come from the buffered old one: wait until both name the same rendition, so
  // the level picked below differs from what plays in index and in frame size.
  const heightOf = (label) => Number((label.match(/×(\d+)/) || [])[1]);
  const heightOfLevel = (level) => heightOf((levels.find((l) => Number(l.value) === level) || { label: '' }).label);
  const before = await waitFor('the playing level and the frames on screen to agree', async () => {
    const now = await page.evaluate(() => {
      const v = document.querySelector('#player');
      return { t: v.currentTime, h: v.videoHeight, level: Number(document.querySelector('#player-level').dataset.level) };
    });
    return heightOfLevel(now.level) === now.h ? now : null;
  }, 30000);
  log(`playing: currentTime ${before.t.toFixed(2)} s, ${before.h} lines, level ${before.level}`);

  // 5. Switch rendition to one that is not playing now; the frame size follows, playback goes on.
  const target = levels.filter((l) => l.value !== '-1')
    .find((l) => Number(l.value) !== before.level && heightOf(l.label) !== before.h);
  check(target, `no other rendition to switch to (${levels.map((l) => l.label).join(', ')})`);
  await page.selectOption('#rendition', target.value);
  await waitFor(`hls.js to switch to level ${target.value}`, () => page.evaluate((v) => {
    const l = document.querySelector('#player-level');
    return l.dataset.level === v && l.dataset.auto === 'false';
  }, target.value), 30000);
  const switchedAt = await page.evaluate(() => document.querySelector('#player').currentTime);
  const wantHeight = heightOf(target.label);
  await waitFor(`decoded frames of ${wantHeight} lines`, () => page.evaluate((h) =>
    document.querySelector('#player').videoHeight === h, wantHeight), 30000);
  const after = await waitFor('playback to go on after the switch', () => page.evaluate((t0) => {
    const v = document.querySelector('#player');
    return v.currentTime > t0 + 0.5 && !v.paused ? { t: v.currentTime, h: v.videoHeight } : null;
  }, switchedAt), 30000);
  log(`switched to ${target.label}: currentTime ${switchedAt.toFixed(2)} -> ${after.t.toFixed(2)} s, ${after.h} lines`);
  // The AAC track plays too (Chromium counts the decoded bytes of each kind).
  const decoded = await page.evaluate(() => {
    const v = document.querySelector('#player');
    return { audio: v.webkitAudioDecodedByteCount, video: v.webkitVideoDecodedByteCount };
  });
  log(`decoded bytes: video ${decoded.video}, audio ${decoded.audio}`);
  check(decoded.video > 0, 'Chromium decoded no video bytes');
  check(decoded.audio > 0, 'Chromium decoded no audio bytes (the AAC rendition did not play)');
  await page.evaluate(() => document.querySelector('#player').pause());

  // 6. Downloads and thumbnail work with ?access_token= (no header possible there).
  const thumb = await page.evaluate(() => {
    const img = document.querySelector('#thumbnail');
    return img.complete ? img.naturalWidth : -1;
  });
  check(thumb > 0, `the thumbnail did not load (naturalWidth ${thumb})`);
  const mp4 = await page.evaluate(async () => {
    const a = document.querySelector('#downloads a');
    if (!a) return null;
    const res = await fetch(a.href, { headers: { Range: 'bytes=0-11' } });
    const bytes = new Uint8Array(await res.arrayBuffer());
    return { href: a.getAttribute('href'), status: res.status, box: String.fromCharCode(...bytes.slice(4, 8)) };
  });
  check(mp4, 'no MP4 download link');
  check((mp4.status === 206 || mp4.status === 200) && mp4.box === 'ftyp',
    `the MP4 link answered ${mp4.status} with "${mp4.box}"`);
  log(`MP4 link ${mp4.href.replace(/access_token=[^&]+/, 'access_token=…')} -> ${mp4.status} (${mp4.box})`);

  const shot = path.join(artifactDir, 'video-ready.png');
  await page.screenshot({ path: shot, fullPage: true });
  log(`screenshot: ${shot}`);

  // 7. Drag and drop: a file that is not a video, dropped on the page, is uploaded and the
  //    video fails with its reason shown.
  const garbage = Buffer.alloc(64 * 1024);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 2654435761) >>> 24;
  const dataTransfer = await page.evaluateHandle((b64) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'not-a-video.mp4', { type: 'video/mp4' }));
    return dt;
  }, garbage.toString('base64'));
  await page.dispatchEvent('#dropzone', 'dragenter', { dataTransfer });
  await page.dispatchEvent('#dropzone', 'dragover', { dataTransfer });
  await page.dispatchEvent('#dropzone', 'drop', { dataTransfer });
  const badId = await waitFor('the dropped file to open its page', async () => {
    const m = page.url().match(/#\/videos\/([^/?#]+)/);
    return m && m[1] !== id ? m[1] : null;
  }, 60000);
  log(`dropped file created video ${badId}`);
  await waitFor('the dropped non-video to fail', () => page.evaluate(() =>
    document.querySelector('#video-page').dataset.status === 'failed'), 120000, 500);
  const reason = (await page.textContent('#v-error-text')).trim();
  check(reason && reason !== 'no reason given', 'the failed video shows no reason');
  await waitFor('the list to show the failure', () => page.$('#videos a[data-status="failed"]'), 15000);
  log(`failed as expected: ${reason}`);
  await page.screenshot({ path: path.join(artifactDir, 'video-failed.png'), fullPage: true });

  check(pageErrors.length === 0, `the page threw: ${pageErrors.join('; ')}`);
  check(foreign.length === 0, `the page fetched from elsewhere than zerofarm: ${foreign.join(', ')}`);
  await context.close();
}

await runBrowserTest('upload', run);
