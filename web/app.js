// zerofarm web page: token entry, resumable uploads, the list of videos and a video page
// with the farm view and the player, and the storage-side jobs (jobs.js). Plain ES modules, no
// framework; routes are hashes:
//   #/                 the dashboard (welcome and the jobs)
//   #/videos/{id}      a video's page
//   #/jobs             the jobs
//   #/jobs/{id}        the jobs, and that job's instances and result
//   #token=...         stores a token (the link `zerofarm serve` may print) and drops it from the URL

import { api, ApiError, getToken, setToken, withAccessToken } from './api.js';
import { el, fmtBytes, fmtDuration, fmtTime, STATUS_LABEL } from './format.js';
import { Uploader } from './upload.js';
import { FarmView } from './farm.js';
import { Player } from './player.js';
import { JobsView } from './jobs.js';

const $ = (id) => document.getElementById(id);
const VIDEO_POLL_MS = 1000;       // the farm view's refresh
const LIST_POLL_MS = 3000;
const TERMINAL = new Set(['ready', 'failed']);

const state = {
  videos: [],
  currentId: null,
  current: null,
  videoTimer: null,
  listTimer: null,
  pollGeneration: 0,
};

// --- token ------------------------------------------------------------------------------

function showTokenPanel(message = '', { cancellable = false } = {}) {
  $('token-panel').hidden = false;
  $('app').hidden = !cancellable;
  $('token-cancel').hidden = !cancellable;
  $('token-error').textContent = message;
  $('token-error').hidden = !message;
  $('token-input').value = '';
  $('token-input').focus();
}

function hideTokenPanel() {
  $('token-panel').hidden = true;
  $('app').hidden = false;
  const token = getToken();
  $('token-state').hidden = !token;
  $('token-state').textContent = token ? `token …${token.slice(-4)}` : '';
  $('token-change').hidden = !token;
}

async function checkToken(token) {
  // Any authenticated call will do; the list is needed right after anyway.
  return api.listVideos({ token });
}

async function submitToken(event) {
  event.preventDefault();
  const token = $('token-input').value.trim();
  if (!token) return;
  $('token-submit').disabled = true;
  try {
    const videos = await checkToken(token);
    setToken(token);
    hideTokenPanel();
    state.videos = videos;
    renderList();
    startListPolling();
    route();
  } catch (e) {
    const msg = e instanceof ApiError && (e.status === 401 || e.status === 403)
      ? 'The server does not accept this token.'
      : `Cannot check the token: ${e.message}`;
    $('token-error').textContent = msg;
    $('token-error').hidden = false;
  } finally {
    $('token-submit').disabled = false;
  }
}

function onAuthError(e) {
  if (e instanceof ApiError && e.status === 401) {
    stopPolling();
    showTokenPanel('Your token was refused (401). Enter a valid token.');
    return true;
  }
  return false;
}

// --- the list of videos -------------------------------------------------------------------

function progressFraction(v) {
  const p = v.progress || {};
  if (typeof p.fraction === 'number') return Math.max(0, Math.min(1, p.fraction));
  if (v.status === 'uploading' && v.size) return (v.bytes_received || 0) / v.size;
  if (v.status === 'ready') return 1;
  return 0;
}

function statusBadge(status) {
  return el('span', { class: 'badge', dataset: { status } }, STATUS_LABEL[status] || status || '?');
}

function renderList() {
  const list = $('videos');
  const items = state.videos.map((v) => {
    const f = progressFraction(v);
    const sub = [];
    if (v.duration_seconds) sub.push(fmtDuration(v.duration_seconds));
    if (v.width && v.height) sub.push(`${v.width}×${v.height}`);
    if (v.size) sub.push(fmtBytes(v.size));
    if (v.created_at) sub.push(fmtTime(v.created_at));
    return el('li', { class: v.id === state.currentId ? 'video-item active' : 'video-item' },
      el('a', { href: `#/videos/${encodeURIComponent(v.id)}`, dataset: { id: v.id, status: v.status } },
        el('div', { class: 'video-item-top' },
          el('span', { class: 'video-item-name', title: v.filename || v.id }, v.filename || v.id),
          statusBadge(v.status)),
        el('div', { class: 'video-item-sub muted' }, sub.join(' · ')),
        TERMINAL.has(v.status) ? null
          : el('div', { class: 'bar bar-thin' }, el('div', { class: 'bar-fill', style: `width:${(f * 100).toFixed(1)}%` })),
        v.status === 'failed' && v.error
          ? el('div', { class: 'video-item-error', title: v.error.message }, v.error.message || v.error.code)
          : null));
  });
  list.replaceChildren(...items);
  $('videos-empty').hidden = state.videos.length > 0;
  for (const v of state.videos) state.uploader?.videoStatus(v.id, v.status, v.error && v.error.message);
}

async function refreshList() {
  try {
    state.videos = await api.listVideos();
    $('videos-error').hidden = true;
    renderList();
  } catch (e) {
    if (onAuthError(e)) return;
    $('videos-error').textContent = `Cannot list videos: ${e.message}`;
    $('videos-error').hidden = false;
  }
}

function startListPolling() {
  clearInterval(state.listTimer);
  state.listTimer = setInterval(() => { if (!document.hidden) refreshList(); }, LIST_POLL_MS);
  jobs.start();
}

function stopPolling() {
  clearInterval(state.listTimer);
  clearTimeout(state.videoTimer);
  state.pollGeneration++;
  jobs.stop();
}

// --- a video's page -----------------------------------------------------------------------

let farm;
let player;
let jobs;

function phaseText(v) {
  const p = v.progress || {};
  switch (v.status) {
    case 'uploading': return 'uploading';
    case 'ready': return 'ready';
    case 'failed': return 'failed';
    default:
      // Segments are transcoded while the source is still being cut.
      if (p.phase === 'ingest' && p.tasks_running > 0) return 'ingest + transcode';
      return p.phase || 'processing';
  }
}

function renderVideo(v) {
  state.current = v;
  $('welcome').hidden = true;
  $('video-page').hidden = false;
  $('video-page').dataset.status = v.status;
  $('v-title').textContent = v.filename || v.id;
  const meta = [v.id];
  if (v.duration_seconds) meta.push(fmtDuration(v.duration_seconds));
  if (v.width && v.height) meta.push(`${v.width}×${v.height}`);
  if (v.fps) meta.push(`${Number(v.fps).toFixed(2).replace(/\.?0+$/, '')} fps`);
  if (v.size) meta.push(fmtBytes(v.size));
  const made = (v.renditions || []).map((r) => r.name).filter(Boolean);
  if (made.length) meta.push(`renditions ${made.join(', ')}`);
  else if (Array.isArray(v.ladder) && v.ladder.length) meta.push(`ladder ${v.ladder.join(', ')}`);
  if (v.preset) meta.push(v.preset);
  if (v.created_at) meta.push(`created ${fmtTime(v.created_at)}`);
  $('v-meta').textContent = meta.join(' · ');

  const badge = $('v-status');
  badge.textContent = STATUS_LABEL[v.status] || v.status;
  badge.dataset.status = v.status;

  // Failure reason.
  const failed = v.status === 'failed';
  $('v-error').hidden = !failed;
  if (failed) {
    const err = v.error || {};
    $('v-error-text').textContent = err.message
      ? `${err.message}${err.code ? ` (${err.code})` : ''}`
      : (err.code || 'no reason given');
  }
  const warnings = Array.isArray(v.warnings) ? v.warnings : [];
  $('v-warnings').hidden = warnings.length === 0;
  $('v-warnings').replaceChildren(...warnings.map((w) => el('li', {}, w)));

  // Progress.
  const f = progressFraction(v);
  const p = v.progress || {};
  $('v-progress').hidden = v.status === 'ready' || failed;
  $('v-phase').textContent = phaseText(v);
  const parts = [];
  if (v.status === 'uploading') {
    parts.push(`${fmtBytes(v.bytes_received)} of ${v.size ? fmtBytes(v.size) : '?'}`);
  }
  if (p.tasks_known) {
    let text = `${p.tasks_done ?? 0} of ${p.tasks_known}${p.ingest_done === false ? '+' : ''} segments done`;
    if (p.tasks_running) text += `, ${p.tasks_running} running`;
    parts.push(text);
  }
  if (p.audio === 'pending' || p.audio === 'done') parts.push(`audio ${p.audio}`);
  parts.push(`${Math.floor(f * 100)}%`);
  $('v-progress-text').textContent = parts.join(' · ');
  $('v-progress-bar').style.width = `${(f * 100).toFixed(1)}%`;
  $('v-progress-bar').dataset.status = v.status;

  farm.render(v);
  $('farm-empty').textContent = failed
    ? 'No chunks: the video failed before any was cut.'
    : 'No chunks yet: the source is still being ingested.';

  // Playback as soon as the video is playable (its head is published while the rest is still
  // transcoding: the bar under the player shows how far it plays); downloads once ready.
  const ready = v.status === 'ready';
  const playable = ready || (!failed && v.playable === true);
  $('player-card').hidden = !playable;
  $('thumb-card').hidden = !(playable && v.playback && v.playback.thumbnail);
  $('share').hidden = !(playable && v.playback && v.playback.share);
  const growing = playable && !ready;
  $('playable').hidden = !growing;
  if (growing) {
    const total = v.duration_seconds || 0;
    const have = Math.min(v.playable_seconds || 0, total || Infinity);
    $('playable-fill').style.width = total ? `${((have / total) * 100).toFixed(1)}%` : '0%';
    $('playable-text').textContent =
      `plays to ${fmtDuration(have)}${total ? ` of ${fmtDuration(total)}` : ''}; the rest is transcoding`;
    $('playable').dataset.seconds = String(have);
  }
  if (!ready) $('downloads').replaceChildren();
  if (playable) {
    const token = getToken();
    // The playback URLs need no token (public, or signed for a while): the token stays out of
    // <img> and download links.
    const thumb = v.playback && v.playback.thumbnail ? v.playback.thumbnail : '';
    if (v.playback && v.playback.hls) player.load(v.playback.hls, token, thumb, v.id);
    renderShare(v);
    if (thumb && $('thumbnail').getAttribute('src') !== thumb) $('thumbnail').src = thumb;
    const mp4Of = (r) => (v.playback && v.playback.mp4 && v.playback.mp4[r.name]) || withAccessToken(r.mp4, token);
    const links = (v.renditions || []).filter((r) => r.mp4).map((r) =>
      el('a', { class: 'btn btn-ghost btn-small', href: mp4Of(r), download: `${v.id}-${r.name}.mp4`,
        title: `Progressive MP4, ${r.width}×${r.height}` }, `⤓ ${r.name}.mp4`));
    $('downloads').replaceChildren(...(links.length ? [el('span', { class: 'muted' }, 'MP4'), ...links] : []));
  }
}

// The share/embed link: a page that plays the video with no API token (embed.html).
function renderShare(v) {
  const p = v.playback;
  if (!p || !p.share) return;
  const share = new URL(p.share, location.href).href;
  if (document.activeElement !== $('share-policy')) $('share-policy').value = p.policy || v.playback_policy;
  $('share-link').value = share;
  $('share-link').dataset.embed = p.embed
    || `<iframe src="${share}" width="640" height="360" allowfullscreen style="border:0"></iframe>`;
  $('share-expiry').textContent = p.expires_at
    ? `link valid until ${fmtTime(p.expires_at)}` : 'anyone with the link can play';
}

async function copyText(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    $('share-link').select();
    button.textContent = 'Select + copy';
  }
  setTimeout(() => { button.textContent = label; }, 1500);
}

async function changePolicy() {
  const id = state.currentId;
  if (!id) return;
  try {
    renderVideo(await api.patchVideo(id, { playback_policy: $('share-policy').value }));
  } catch (e) {
    if (onAuthError(e)) return;
    $('share-expiry').textContent = `cannot change: ${e.message}`;
  }
}

function clearVideoPage() {
  $('video-page').hidden = true;
  $('welcome').hidden = false;
  player.destroy();
  $('thumbnail').removeAttribute('src');
  farm.reset(null);
  state.current = null;
}

function pollVideo(id, generation) {
  clearTimeout(state.videoTimer);
  api.getVideo(id).then((v) => {
    if (generation !== state.pollGeneration) return;
    renderVideo(v);
    state.uploader?.videoStatus(v.id, v.status, v.error && v.error.message);
    // Keep the list's entry in step with the page.
    const i = state.videos.findIndex((x) => x.id === v.id);
    if (i >= 0 && state.videos[i].status !== v.status) { state.videos[i] = { ...v, chunks: undefined }; renderList(); }
    // Poll every second while the farm works; once ready or failed, slowly (deletions, retries).
    const delay = TERMINAL.has(v.status) ? 10 * VIDEO_POLL_MS : VIDEO_POLL_MS;
    state.videoTimer = setTimeout(() => pollVideo(id, generation), delay);
  }, (e) => {
    if (generation !== state.pollGeneration) return;
    if (onAuthError(e)) return;
    if (e instanceof ApiError && e.status === 404) {
      clearVideoPage();
      $('welcome').replaceChildren(el('h2', {}, 'Not found'),
        el('p', { class: 'muted' }, `There is no video ${id} (or it belongs to another tenant).`));
      return;
    }
    state.videoTimer = setTimeout(() => pollVideo(id, generation), 2 * VIDEO_POLL_MS);
  });
}

function openVideo(id) {
  $('app').dataset.view = 'video';
  if (state.currentId !== id) {
    state.currentId = id;
    player.destroy();
    $('thumbnail').removeAttribute('src');
    farm.reset(id);
    $('v-title').textContent = id;
    $('v-meta').textContent = 'loading…';
    $('welcome').hidden = true;
    $('video-page').hidden = false;
  }
  renderList();
  state.pollGeneration++;
  pollVideo(id, state.pollGeneration);
}

function route() {
  const hash = location.hash || '#/';
  const tokenMatch = hash.match(/^#token=([^&]+)/);
  if (tokenMatch) {
    setToken(decodeURIComponent(tokenMatch[1]));
    history.replaceState(null, '', `${location.pathname}#/`);
    hideTokenPanel();
    refreshList();
    startListPolling();
    return route();
  }
  const m = hash.match(/^#\/videos\/([^/?#]+)/);
  const j = hash.match(/^#\/jobs(?:\/([^/?#]+))?/);
  $('nav-jobs').classList.toggle('active', Boolean(j));
  $('nav-videos').classList.toggle('active', !j);
  if (m) {
    jobs.close();
    $('jobs-section').hidden = true;
    openVideo(decodeURIComponent(m[1]));
  } else {
    $('app').dataset.view = j && j[1] ? 'job' : 'home';
    state.currentId = null;
    state.pollGeneration++;
    clearTimeout(state.videoTimer);
    clearVideoPage();
    renderList();
    $('jobs-section').hidden = false;
    $('welcome').hidden = Boolean(j);
    if (j && j[1]) jobs.open(decodeURIComponent(j[1]));
    else jobs.close();
  }
}

async function deleteCurrent() {
  const v = state.current;
  if (!v) return;
  if (!confirm(`Delete ${v.filename || v.id} and every byte of its outputs?`)) return;
  try {
    await api.deleteVideo(v.id);
    location.hash = '#/';
    refreshList();
  } catch (e) {
    if (!onAuthError(e)) alert(`Delete failed: ${e.message}`);
  }
}

// --- health -------------------------------------------------------------------------------

async function refreshHealth() {
  const ok = await api.health();
  const h = $('health');
  h.dataset.state = ok ? 'ok' : 'down';
  h.querySelector('.health-text').textContent = ok ? 'online' : 'unreachable';
}

// --- start ---------------------------------------------------------------------------------

function setupDropzone(uploader) {
  const zone = $('dropzone');
  const input = $('file-input');
  input.addEventListener('change', () => {
    if (input.files && input.files.length) uploader.addFiles([...input.files]);
    input.value = '';
  });
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  // Files dropped anywhere on the page are uploaded; the zone lights up while dragging.
  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth++;
    zone.classList.add('dragging');
  });
  document.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove('dragging');
  });
  document.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    zone.classList.remove('dragging');
    const files = [...e.dataTransfer.files];
    if ($('app').hidden || !getToken()) return;
    if (files.length) uploader.addFiles(files);
  });
  zone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); }
  });
}

function main() {
  farm = new FarmView($('farm'), $('farm-summary'), $('farm-empty'), $('tooltip'));
  jobs = new JobsView({ onAuthError });
  player = new Player({ video: $('player'), select: $('rendition'), levelLabel: $('player-level'), errorBox: $('player-error') });
  const uploader = new Uploader($('uploads'), {
    getOptions: () => ({ ladder: $('opt-ladder').value.trim(), preset: $('opt-preset').value }),
    onUnauthorized: () => onAuthError(new ApiError(401, 'unauthorized', 'token refused')),
    onVideo: (id, { finished }) => {
      refreshList();
      // Open the new video's page as soon as the server names it: the farm view starts
      // filling while the upload is still running.
      if (!finished || !state.currentId) location.hash = `#/videos/${encodeURIComponent(id)}`;
    },
  });
  state.uploader = uploader;
  setupDropzone(uploader);

  $('token-form').addEventListener('submit', submitToken);
  $('token-change').addEventListener('click', () => showTokenPanel('', { cancellable: true }));
  $('token-cancel').addEventListener('click', hideTokenPanel);
  $('videos-refresh').addEventListener('click', refreshList);
  $('v-delete').addEventListener('click', deleteCurrent);
  $('share-policy').addEventListener('change', changePolicy);
  $('share-copy').addEventListener('click', (e) => copyText($('share-link').value, e.currentTarget));
  $('embed-copy').addEventListener('click', (e) => copyText($('share-link').dataset.embed || '', e.currentTarget));
  window.addEventListener('hashchange', route);

  refreshHealth();
  setInterval(refreshHealth, 10000);

  if (/^#token=/.test(location.hash)) {
    route();
    return;
  }
  if (!getToken()) {
    showTokenPanel();
    return;
  }
  hideTokenPanel();
  refreshList();
  startListPolling();
  route();
}

main();
