// Thin client for the zerofarm HTTP API (same origin as the page).
// Errors come back as {"error": {"code", "message"}}; they are thrown as ApiError.

const TOKEN_KEY = 'zerofarm.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || `http_${status}`;
  }
}

export function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export function authHeaders(token = getToken()) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// A playback URL (HLS, MP4, thumbnail) usable where no header can be set: <a href>, <img>.
export function withAccessToken(path, token = getToken()) {
  if (!path) return '';
  const sep = path.includes('?') ? '&' : '?';
  return `${path}${sep}access_token=${encodeURIComponent(token)}`;
}

async function request(method, path, { token, signal, body: payload } = {}) {
  let res;
  try {
    const headers = { Accept: 'application/json', ...authHeaders(token ?? getToken()) };
    if (payload !== undefined) headers['Content-Type'] = 'application/json';
    res = await fetch(path, {
      method,
      headers,
      body: payload === undefined ? undefined : JSON.stringify(payload),
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let body = null;
  if (text) {
    try { body = JSON.parse(text); } catch { body = null; }
  }
  if (!res.ok) {
    const err = body && body.error ? body.error : {};
    throw new ApiError(res.status, err.code, err.message || text.slice(0, 200) || res.statusText);
  }
  return body;
}

export const api = {
  listVideos: (opts) => request('GET', '/v1/videos', opts).then((b) => (b && b.videos) || []),
  getVideo: (id, opts) => request('GET', `/v1/videos/${encodeURIComponent(id)}`, opts),
  deleteVideo: (id, opts) => request('DELETE', `/v1/videos/${encodeURIComponent(id)}`, opts),
  // Changes playback_policy, metadata or passthrough; returns the video.
  patchVideo: (id, changes, opts) =>
    request('PATCH', `/v1/videos/${encodeURIComponent(id)}`, { ...opts, body: changes }),
  // Storage-side jobs: the list (summaries, newest first), one job with its instances, cancel.
  listJobs: (opts) => request('GET', '/v1/jobs', opts).then((b) => (b && b.jobs) || []),
  getJob: (id, opts) => request('GET', `/v1/jobs/${encodeURIComponent(id)}`, opts),
  cancelJob: (id, opts) => request('DELETE', `/v1/jobs/${encodeURIComponent(id)}`, opts),
  async health() {
    try {
      const res = await fetch('/healthz', { cache: 'no-store' });
      return res.ok;
    } catch {
      return false;
    }
  },
};
