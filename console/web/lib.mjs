// Pure logic of the Console: URL state, API paths and formatting. No DOM
// here, so node --test checks all of it (console/test/lib.test.mjs).

export const EVENT_KINDS = ['network_connect', 'network_accept', 'network_listen', 'network_flow',
  'dns_query', 'dns_lookup', 'dns_resolution', 'lsm_net_connect'];

export const PAGE_SIZES = [25, 50, 100, 200, 500];
export const DEFAULT_PAGE_SIZE = 100;

// Time-window presets of Investigate, in milliseconds.
export const WINDOWS = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };
export const DEFAULT_WINDOW = '1h';

// Sortable fields of each paged list, as the API names them (sort=field
// ascending, sort=-field descending).
export const SORTABLE = {
  connections: ['hostname', 'sensor_id', 'local_address', 'local_port', 'remote_address', 'remote_port', 'state', 'pid', 'binary', 'uid',
    'duration_secs', 'first_seen', 'last_seen'],
  listening: ['hostname', 'sensor_id', 'local_address', 'local_port', 'service', 'pid', 'binary', 'uid', 'first_seen', 'last_seen'],
  udp: ['hostname', 'sensor_id', 'local_address', 'local_port', 'remote_address', 'remote_port', 'service', 'pid', 'binary', 'uid',
    'first_seen', 'last_seen'],
  flows: ['hostname', 'sensor_id', 'src_address', 'src_port', 'dst_address', 'dst_port', 'protocol', 'direction', 'pid', 'binary',
    'uid', 'duration_secs', 'bytes_sent', 'bytes_received', 'state', 'started_at', 'last_seen'],
};

// Views by path. The path and query string are the whole state of a view,
// so any view can be bookmarked and shared.
export const ROUTES = {
  '/network/connections': 'connections',
  '/network/listening': 'listening',
  '/network/flows': 'flows',
  '/network/summary': 'summary',
  '/investigate': 'investigate',
};
export const HOME = '/network/summary';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function intIn(v, lo, hi, def) {
  if (v == null || !/^\d+$/.test(v)) return def;
  const n = Number(v);
  return n >= lo && n <= hi ? n : def;
}

function sortIn(v, fields) {
  if (!v) return '';
  const f = v.startsWith('-') ? v.slice(1) : v;
  return fields.includes(f) ? v : '';
}

// A container or pod filter as the API takes it: 1 to 255 bytes.
const MAX_SCOPE = 255;
function scopeOrEmpty(v) {
  const t = (v || '').trim();
  return t && new TextEncoder().encode(t).length <= MAX_SCOPE ? t : '';
}

// scopeIn reads the Container/Pod filter of a URL. The Console narrows by
// one of them at a time (the filter is one field), so a URL naming both
// keeps the pod: the narrower of the two.
function scopeIn(q) {
  const pod = scopeOrEmpty(q.get('pod'));
  return { container: pod ? '' : scopeOrEmpty(q.get('container')), pod };
}

function isoOrEmpty(v) {
  if (!v) return '';
  const t = Date.parse(v);
  return Number.isNaN(t) ? '' : new Date(t).toISOString();
}

// parseRoute reads a location into {view, ...filters}. Anything invalid in
// the URL falls back to its default instead of breaking the page.
export function parseRoute(pathname, search) {
  const view = ROUTES[pathname.replace(/\/+$/, '')] || '';
  const q = new URLSearchParams(search);
  const sensor = UUID.test(q.get('sensor_id') || '') ? q.get('sensor_id').toLowerCase() : '';
  const s = { view, sensor_id: sensor };
  switch (view) {
    case 'connections': case 'flows': case 'listening': {
      const list = view === 'listening' && q.get('tab') === 'udp' ? 'udp' : view;
      if (view === 'listening') s.tab = list === 'udp' ? 'udp' : 'tcp';
      s.page = intIn(q.get('page'), 1, 1 << 30, 1);
      s.page_size = intIn(q.get('page_size'), 1, 500, DEFAULT_PAGE_SIZE);
      s.sort = sortIn(q.get('sort'), SORTABLE[list]);
      Object.assign(s, scopeIn(q));
      break;
    }
    case 'investigate': {
      const kinds = (q.get('kind') || '').split(',').filter((k) => EVENT_KINDS.includes(k));
      s.kinds = [...new Set(kinds)];
      s.since = isoOrEmpty(q.get('since'));
      s.until = isoOrEmpty(q.get('until'));
      const w = q.get('window');
      s.window = s.since && s.until && (!w || w === 'custom') ? 'custom' : (WINDOWS[w] ? w : DEFAULT_WINDOW);
      if (s.window !== 'custom') { s.since = ''; s.until = ''; }
      s.event = UUID.test(q.get('event') || '') ? q.get('event').toLowerCase() : '';
      Object.assign(s, scopeIn(q));
      break;
    }
  }
  return s;
}

// routeURL is the inverse of parseRoute: defaults are left out, so URLs
// stay short and one state has one URL.
export function routeURL(s) {
  const path = Object.keys(ROUTES).find((p) => ROUTES[p] === s.view) || HOME;
  const q = new URLSearchParams();
  if (s.view === 'listening' && s.tab === 'udp') q.set('tab', 'udp');
  if (s.sensor_id) q.set('sensor_id', s.sensor_id);
  setScope(q, s);
  if (s.view === 'investigate') {
    if (s.kinds && s.kinds.length) q.set('kind', s.kinds.join(','));
    if (s.window === 'custom') { q.set('since', s.since); q.set('until', s.until); }
    else if (s.window && s.window !== DEFAULT_WINDOW) q.set('window', s.window);
    if (s.event) q.set('event', s.event);
  } else if (s.page !== undefined) {
    if (s.page > 1) q.set('page', String(s.page));
    if (s.page_size !== DEFAULT_PAGE_SIZE) q.set('page_size', String(s.page_size));
    if (s.sort) q.set('sort', s.sort);
  }
  const qs = q.toString();
  return qs ? path + '?' + qs : path;
}

// setScope adds the Container/Pod filter of a list or Investigate; the
// URL and the API name it alike (container=, pod=).
function setScope(q, s) {
  if (s.view === 'summary') return;
  if (s.container) q.set('container', s.container);
  if (s.pod) q.set('pod', s.pod);
}

// scopeFilter turns the Container/Pod field (what it names, and its text)
// into the state change it asks for, or an error to show beside it. The
// rule is the field's select, not a guess from the text: a bare name such
// as "db-0" could be either.
export function scopeFilter(kind, text) {
  const v = (text || '').trim();
  if (!v) return { change: { container: '', pod: '' } };
  if (new TextEncoder().encode(v).length > MAX_SCOPE) return { error: 'At most ' + MAX_SCOPE + ' bytes.' };
  return { change: kind === 'pod' ? { container: '', pod: v } : { container: v, pod: '' } };
}

// listName is the API list a paged view shows.
export function listName(s) {
  return s.view === 'listening' ? (s.tab === 'udp' ? 'udp' : 'listening') : s.view;
}

// apiPath is the API request of a view's current state.
export function apiPath(s, now = Date.now()) {
  const q = new URLSearchParams();
  if (s.sensor_id) q.set('sensor_id', s.sensor_id);
  setScope(q, s);
  switch (s.view) {
    case 'connections': case 'listening': case 'flows':
      q.set('page', String(s.page));
      q.set('page_size', String(s.page_size));
      if (s.sort) q.set('sort', s.sort);
      return '/api/v1/network/' + listName(s) + '?' + q;
    case 'summary':
      return '/api/v1/network/summary';
    case 'investigate': {
      const w = windowOf(s, now);
      if (s.kinds.length) q.set('kind', s.kinds.join(','));
      q.set('since', w.since);
      q.set('until', w.until);
      return '/api/v2/events?' + q;
    }
  }
  return '';
}

// moreEventsPath asks for the events after a cursor. The cursor carries
// the first page's window; sending a preset's window again would name a
// later "now" that the API refuses as a different query. The container and
// pod filters must be sent again: the cursor is refused without them.
export function moreEventsPath(s, cursor) {
  const q = new URLSearchParams();
  if (s.sensor_id) q.set('sensor_id', s.sensor_id);
  setScope(q, s);
  if (s.kinds.length) q.set('kind', s.kinds.join(','));
  q.set('cursor', cursor);
  return '/api/v2/events?' + q;
}

// windowOf turns a preset or custom window into RFC 3339 bounds.
export function windowOf(s, now = Date.now()) {
  if (s.window === 'custom') return { since: s.since, until: s.until };
  const d = WINDOWS[s.window] || WINDOWS[DEFAULT_WINDOW];
  return { since: new Date(now - d).toISOString(), until: new Date(now).toISOString() };
}

// nextSort is the sort after a click on a column: ascending first, then
// descending, then ascending again.
export function nextSort(current, field) {
  return current === field ? '-' + field : field;
}

// sortState is the aria-sort value of a column under the current sort.
export function sortState(current, field) {
  if (current === field) return 'ascending';
  if (current === '-' + field) return 'descending';
  return 'none';
}

export function fmtBytes(n) {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = Number(n), i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? v + ' B' : v.toFixed(v < 10 ? 1 : 0) + ' ' + units[i];
}

// fmtDuration shows whole seconds compactly. A null duration means the
// connection was open before the sensor started: its age is unknown.
export function fmtDuration(secs) {
  if (secs == null) return 'predates sensor';
  const s = Math.max(0, Math.floor(Number(secs)));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + String(s % 60).padStart(2, '0') + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor(s % 86400 / 3600) + 'h';
}

// fmtTime shows a time in the browser's zone (or the zone given), with the
// exact UTC time for the hover title.
export function fmtTime(iso, timeZone) {
  if (!iso) return { text: '', title: '' };
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return { text: String(iso), title: '' };
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(d).reduce((m, p) => (m[p.type] = p.value, m), {});
  return {
    text: `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`,
    title: d.toISOString().replace('T', ' ').replace('Z', ' UTC'),
  };
}

// endpoint joins an address and port; IPv6 addresses are bracketed.
export function endpoint(addr, port) {
  if (addr == null) return '';
  const a = addr.includes(':') ? '[' + addr + ']' : addr;
  return port == null ? addr : a + ':' + port;
}

export function processLabel(binary, pid) {
  if (pid == null) return binary || '—';
  return (binary || '?') + ' (' + pid + ')';
}

// workload names what a row's process runs in, for the Container/Pod
// column: a container's pod as namespace/pod, else the container's name,
// else its id cut to 12 digits as docker ps shows it; the image is the
// hover title. A host process shows its systemd unit; anything else is
// empty. kind says which it is, for styling and tests.
export function workload(r) {
  const id = r.container_id || '', name = r.container_name || '', pod = r.pod || '', ns = r.pod_namespace || '';
  if (id || name || pod || r.pod_uid) {
    const short = id.slice(0, 12);
    const text = pod ? (ns ? ns + '/' + pod : pod) : name || short || 'pod ' + String(r.pod_uid).slice(0, 8);
    const what = [name || short, r.container_runtime].filter(Boolean).join(', ');
    const title = [r.container_image || 'image unknown', what ? 'container ' + what : ''].filter(Boolean).join(' · ');
    return { text, title, kind: pod || r.pod_uid ? 'pod' : 'container' };
  }
  if (r.unit) return { text: r.unit, title: 'systemd unit', kind: 'unit' };
  return { text: '', title: '', kind: '' };
}

// Telecom and well-known service names as the Console shows them.
const SERVICE_LABELS = { 'gtp-u': 'GTP-U', 'gtp-c': 'GTP-C', pfcp: 'PFCP', radius: 'RADIUS', 'radius-acct': 'RADIUS accounting' };
export function serviceLabel(s) {
  return s ? (SERVICE_LABELS[s] || s.toUpperCase()) : '';
}

// anomalyLevel grades an anomaly score (standard deviations from the
// sensor's own hourly mean).
export function anomalyLevel(score) {
  const a = Math.abs(Number(score) || 0);
  return a >= 3 ? 'high' : a >= 1.5 ? 'elevated' : 'normal';
}

// clockSkew says how far a sensor's clock runs from ingest's, and how much
// that matters: a few seconds is delivery delay, a minute or more means
// its times (and the window its events must fall in) are off.
export function clockSkew(secs) {
  const v = Number(secs) || 0, a = Math.abs(v);
  if (a < 2) return { text: 'in step', level: 'normal' };
  return { text: fmtDuration(a) + (v > 0 ? ' ahead' : ' behind'), level: a >= 60 ? 'high' : a >= 5 ? 'elevated' : 'normal' };
}

// symlog maps counts to a log-like axis that keeps zero: fleets mix hosts
// with 3 and 30,000 connections.
export function symlog(v) {
  return Math.log10(1 + Math.max(0, Number(v) || 0));
}

// ticks gives axis ticks for counts up to max: 0, 1, 10, 100, ...
export function ticks(max) {
  const t = [0, 1];
  for (let p = 10; p <= max; p *= 10) t.push(p);
  return t;
}

// refreshMs is how often snapshot views refresh: the shortest heartbeat
// interval of the fleet, between 5 s and 60 s (15 s when unknown).
export function refreshMs(sensors) {
  const iv = (sensors || []).map((s) => Number(s.interval_secs)).filter((v) => v > 0);
  const s = iv.length ? Math.min(...iv) : 15;
  return Math.min(60, Math.max(5, s)) * 1000;
}

// localInput converts an RFC 3339 time to a datetime-local input value in
// the browser's zone, and fromLocalInput back.
export function localInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

// errorAdvice says what a user can do about a failed request.
export function errorAdvice(status, msg) {
  switch (true) {
    case status === 401: return 'Your token was refused. Sign in again with a valid API token.';
    // The service's message names the role the token has and the one needed.
    case status === 403: return 'This token may not use this view' + (msg ? ': ' + msg : '') + '. Ask an admin for a token with that role.';
    case status === 400: return 'The filter was refused: ' + msg + '. Change the filter and try again.';
    case status === 503: return 'Storage is unavailable (' + msg + '). The view retries on its own; if this lasts, check ClickHouse.';
    case status === 504: return 'The query took too long. Narrow the filter (one sensor, a shorter window).';
    case status === 0: return 'The query service cannot be reached. Check that it is running; the view retries on its own.';
  }
  return 'The request failed (' + status + '): ' + msg;
}

// Capabilities shown as tags in the summary, in this order; the others
// (ebpf_probes, attribution_failures, ...) are in the detail panel.
const CAP_TAGS = ['flow_source', 'ebpf', 'dns', 'lsm', 'sctp'];
const CAP_OK = ['active', 'available'];
const CAP_OFF = ['unavailable', 'off', 'not_telecom'];

// capabilityTags turns a sensor's capabilities (free-form strings, see
// docs/heartbeat.md) into short tags: the key and the value's first word
// ("lsm unavailable"), with the whole value for the hover title and a
// state for its colour. A sensor that lost kernel events says how many.
export function capabilityTags(caps) {
  const out = [];
  if (!caps || typeof caps !== 'object') return out;
  for (const k of CAP_TAGS) {
    const v = caps[k];
    if (typeof v !== 'string' || v === '') continue;
    const word = v.split(':')[0].trim();
    const state = k === 'flow_source' || CAP_OK.includes(word) ? 'ok' : CAP_OFF.includes(word) ? 'off' : 'warn';
    out.push({ key: k, label: k + ' ' + (k === 'flow_source' ? v : word), title: k + ': ' + v, state });
  }
  const lost = Number(caps.ebpf_lost_events);
  if (lost > 0) out.push({ key: 'ebpf_lost_events', label: lost + ' lost', title: 'ebpf_lost_events: ' + lost + ' kernel events lost', state: 'warn' });
  return out;
}
