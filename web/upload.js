// Resumable uploads with tus-js-client (vendor/tus.min.js, the global `tus`).
// Each file gets a row with a progress bar, pause/resume and, once the server has created
// the video, a link to its page. tus keeps a fingerprint of unfinished uploads in
// localStorage, so choosing the same file again after a reload or a lost connection resumes
// it from the server's offset instead of starting over.

import { el, fmtBytes } from './format.js';
import { authHeaders, getToken } from './api.js';

const CHUNK_SIZE = 8 * 1024 * 1024;
const VIDEO_IDS_KEY = 'zerofarm.uploadVideoIds';  // tus upload URL -> video id

function rememberVideoId(uploadUrl, videoId) {
  try {
    const map = JSON.parse(localStorage.getItem(VIDEO_IDS_KEY) || '{}');
    map[uploadUrl] = videoId;
    localStorage.setItem(VIDEO_IDS_KEY, JSON.stringify(map));
  } catch { /* storage full or disabled: the link just appears later */ }
}

function recallVideoId(uploadUrl) {
  try { return JSON.parse(localStorage.getItem(VIDEO_IDS_KEY) || '{}')[uploadUrl] || null; } catch { return null; }
}

function forgetVideoId(uploadUrl) {
  try {
    const map = JSON.parse(localStorage.getItem(VIDEO_IDS_KEY) || '{}');
    delete map[uploadUrl];
    localStorage.setItem(VIDEO_IDS_KEY, JSON.stringify(map));
  } catch { /* ignore */ }
}

export class Uploader {
  // list: the <ul> for upload rows; onVideo(id, {finished}) is called when the server names
  // the video (creation) and when the upload completes.
  // onUnauthorized() is called when the server refuses the token (401) during an upload.
  constructor(list, { onVideo, getOptions, onUnauthorized }) {
    this.list = list;
    this.onVideo = onVideo;
    this.getOptions = getOptions;
    this.onUnauthorized = onUnauthorized;
  }

  // What became of an uploaded video: a row whose bytes all arrived but whose video failed
  // shows the failure, not a green 100%.
  videoStatus(id, status, reason) {
    for (const row of this.list.querySelectorAll('.upload')) {
      if (row.dataset.videoId !== id || status !== 'failed' || row.dataset.state === 'failed') continue;
      row.dataset.state = 'failed';
      row.querySelector('.upload-pct').textContent = 'failed';
      const state = row.querySelector('.upload-state');
      state.textContent = `failed: ${reason || 'the video could not be processed'}`;
      state.title = state.textContent;
    }
  }

  addFiles(files) {
    for (const file of files) this.start(file);
  }

  start(file) {
    if (!window.tus || !window.tus.isSupported) {
      this.list.append(el('li', { class: 'upload failed' },
        el('span', { class: 'upload-name' }, file.name),
        el('span', { class: 'upload-state' }, 'this browser cannot upload with tus')));
      return;
    }
    const opts = this.getOptions ? this.getOptions() : {};
    const metadata = { filename: file.name, filetype: file.type || 'application/octet-stream' };
    if (opts.ladder) metadata.ladder = opts.ladder;
    if (opts.preset) metadata.preset = opts.preset;

    const bar = el('div', { class: 'bar-fill' });
    const state = el('span', { class: 'upload-state' }, 'starting…');
    const pct = el('span', { class: 'upload-pct' }, '0%');
    const toggle = el('button', { class: 'btn btn-ghost btn-small', type: 'button' }, 'Pause');
    const link = el('a', { class: 'upload-link', hidden: true }, 'open');
    const row = el('li', { class: 'upload', dataset: { state: 'active' } },
      el('div', { class: 'upload-top' },
        el('span', { class: 'upload-name', title: file.name }, file.name),
        pct),
      el('div', { class: 'bar' }, bar),
      el('div', { class: 'upload-bottom' }, state, el('span', { class: 'spacer' }), link, toggle));
    this.list.prepend(row);

    let videoId = null;
    let paused = false;
    const setVideo = (id, finished) => {
      if (!id) return;
      const first = videoId !== id;
      videoId = id;
      row.dataset.videoId = id;
      link.href = `#/videos/${encodeURIComponent(id)}`;
      link.hidden = false;
      if (first || finished) this.onVideo?.(id, { finished });
    };

    const upload = new window.tus.Upload(file, {
      endpoint: '/v1/uploads',
      chunkSize: CHUNK_SIZE,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      metadata,
      headers: authHeaders(getToken()),
      removeFingerprintOnSuccess: true,
      onAfterResponse: (req, res) => {
        const id = res.getHeader('Zerofarm-Video-Id');
        if (id) {
          if (upload.url) rememberVideoId(upload.url, id);
          setVideo(id, false);
        }
      },
      onUploadUrlAvailable: () => {
        if (videoId) rememberVideoId(upload.url, videoId);
        else setVideo(recallVideoId(upload.url), false);
      },
      onProgress: (sent, total) => {
        const f = total ? sent / total : 0;
        bar.style.width = `${(f * 100).toFixed(1)}%`;
        pct.textContent = `${Math.floor(f * 100)}%`;
        state.textContent = `${fmtBytes(sent)} of ${fmtBytes(total)}`;
      },
      onSuccess: () => {
        row.dataset.state = 'done';
        bar.style.width = '100%';
        pct.textContent = '100%';
        state.textContent = `uploaded ${fmtBytes(file.size)}`;
        toggle.remove();
        const id = videoId || (upload.url && recallVideoId(upload.url));
        if (upload.url) forgetVideoId(upload.url);
        setVideo(id, true);
      },
      onError: (err) => {
        row.dataset.state = 'failed';
        pct.textContent = 'failed';
        const res = err && err.originalResponse;
        if (res && res.getStatus() === 401) {
          // The token was refused: sign in again, then Retry resumes from the server's offset.
          state.textContent = 'failed: the token was refused (401); sign in and retry';
          toggle.textContent = 'Retry';
          paused = true;
          this.onUnauthorized?.();
          return;
        }
        let message = (err && err.message) || String(err);
        if (res) {
          try {
            const body = JSON.parse(res.getBody() || '{}');
            if (body.error && body.error.message) message = body.error.message;
          } catch { /* not JSON */ }
          message = `HTTP ${res.getStatus()}: ${message.split('\n')[0]}`;
        }
        state.textContent = `failed: ${message}`;
        state.title = message;
        toggle.textContent = 'Retry';
        paused = true;
      },
    });

    toggle.addEventListener('click', () => {
      if (paused) {
        paused = false;
        row.dataset.state = 'active';
        toggle.textContent = 'Pause';
        state.textContent = 'resuming…';
        upload.options.headers = authHeaders(getToken());
        upload.start();
      } else {
        paused = true;
        row.dataset.state = 'paused';
        toggle.textContent = 'Resume';
        state.textContent = `paused at ${pct.textContent}`;
        upload.abort();
      }
    });

    upload.findPreviousUploads().then((previous) => {
      if (previous.length) {
        // Resume the most recent unfinished upload of this very file.
        previous.sort((a, b) => (Date.parse(b.creationTime) || 0) - (Date.parse(a.creationTime) || 0));
        upload.resumeFromPreviousUpload(previous[0]);
        setVideo(recallVideoId(previous[0].uploadUrl), false);
        state.textContent = 'resuming…';
      }
      upload.start();
    }, () => upload.start());
  }
}
