// Pure logic of the Console: URL state, API paths and formatting. No DOM
// here, so node --test checks all of it (console/test/lib.test.mjs).

export const EVENT_KINDS = ['network_connect', 'network_accept', 'network_listen', 'network_flow',
  'dns_query', 'dns_lookup', 'dns_resolution', 'lsm_net_connect',
  // findings of the baseline job (query/baseline): what is new on a sensor
  'baseline_new_listener', 'baseline_new_destination', 'baseline_new_domain', 'baseline_new_peer', 'baseline_connection_count'];

export const PAGE_SIZES = [25, 50, 100, 200, 500, 1000];
export const DEFAULT_PAGE_SIZE = 100;
// The v1 lists serve at most 500 rows a page; a larger Console page is
// read as several API pages of this size (the page size must be a
// multiple of it).
export const API_MAX_PAGE = 500;

// Time-window presets of Investigate, in milliseconds.
export const WINDOWS = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };
export const DEFAULT_WINDOW = '1h';
// The map's presets: the graph API takes a window of at most 7 days.
export const MAP_WINDOWS = Object.fromEntries(Object.entries(WINDOWS).filter(([, ms]) => ms <= 7 * 86400e3));

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
  '/network/map': 'map',
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

// scopeIn reads the Container/Pod filter of a URL. container= is a search
// term (it may repeat, container:a container:b); the Container/Pod field
// shows the first one. A URL naming a pod and a container keeps both: the
// API ANDs them, and the URL must read back as it was written.
function scopeIn(q, terms) {
  const c = terms.find((t) => t.key === 'container');
  return { container: c ? c.value : '', pod: scopeOrEmpty(q.get('pod')) };
}

// windowIn reads a time window into s: a preset of presets, or since and
// until (custom) when both are valid; anything else is the default.
function windowIn(q, s, presets) {
  s.since = isoOrEmpty(q.get('since'));
  s.until = isoOrEmpty(q.get('until'));
  const w = q.get('window');
  s.window = s.since && s.until && (!w || w === 'custom') ? 'custom' : (presets[w] ? w : DEFAULT_WINDOW);
  if (s.window !== 'custom') { s.since = ''; s.until = ''; }
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
  const terms = view && view !== 'summary' ? termsIn(q) : [];
  if (SNAPSHOT_VIEWS.includes(view)) {
    s.at = atIn(q.get('at'));
    s.span = SPANS[q.get('span')] ? q.get('span') : DEFAULT_SPAN;
  }
  switch (view) {
    case 'connections': case 'flows': case 'listening': {
      const list = view === 'listening' && q.get('tab') === 'udp' ? 'udp' : view;
      if (view === 'listening') s.tab = list === 'udp' ? 'udp' : 'tcp';
      s.page = intIn(q.get('page'), 1, 1 << 30, 1);
      s.page_size = q.get('page_size') === '1000' ? 1000 : intIn(q.get('page_size'), 1, API_MAX_PAGE, DEFAULT_PAGE_SIZE);
      s.sort = sortIn(q.get('sort'), SORTABLE[list]);
      Object.assign(s, scopeIn(q, terms));
      s.terms = terms;
      if (view === 'connections') s.time_wait = q.get('time_wait') === '1';
      break;
    }
    case 'investigate': {
      const kinds = (q.get('kind') || '').split(',').filter((k) => EVENT_KINDS.includes(k));
      s.kinds = [...new Set(kinds)];
      windowIn(q, s, WINDOWS);
      s.event = UUID.test(q.get('event') || '') ? q.get('event').toLowerCase() : '';
      Object.assign(s, scopeIn(q, terms));
      s.terms = terms;
      break;
    }
    case 'map': {
      s.group = GROUPINGS.includes(q.get('group')) ? q.get('group') : GROUPINGS[0];
      windowIn(q, s, MAP_WINDOWS);
      Object.assign(s, scopeIn(q, terms));
      s.terms = terms;
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
  if (s.view === 'investigate' || s.view === 'map') {
    if (s.kinds && s.kinds.length) q.set('kind', s.kinds.join(','));
    if (s.group && s.group !== GROUPINGS[0]) q.set('group', s.group);
    if (s.window === 'custom') { q.set('since', s.since); q.set('until', s.until); }
    else if (s.window && s.window !== DEFAULT_WINDOW) q.set('window', s.window);
    if (s.event) q.set('event', s.event);
  } else if (s.page !== undefined) {
    if (s.page > 1) q.set('page', String(s.page));
    if (s.page_size !== DEFAULT_PAGE_SIZE) q.set('page_size', String(s.page_size));
    if (s.sort) q.set('sort', s.sort);
    if (s.view === 'connections' && s.time_wait) q.set('time_wait', '1');
  }
  if (SNAPSHOT_VIEWS.includes(s.view)) {
    if (s.at) q.set('at', s.at);
    if (s.span && s.span !== DEFAULT_SPAN) q.set('span', s.span);
  }
  const qs = q.toString();
  return qs ? path + '?' + qs : path;
}

// setScope adds the search terms and the pod filter of a list or
// Investigate, in the order they were typed; the URL and the API name them
// alike (addr=, port=, container=, pod=, ...). For the API, terms the view
// cannot take are left out (unapplied says which, for the user).
function setScope(q, s, forAPI) {
  if (s.view === 'summary') return;
  for (const t of termsOf(s)) {
    if (forAPI && !takes(s, t.key)) continue;
    q.append(t.key, t.value);
  }
  if (s.pod) q.set('pod', s.pod);
}

// termsOf is a state's search terms. A state built by hand (older code,
// tests) may name its container only as .container.
function termsOf(s) {
  if (s.terms) return s.terms;
  return s.container ? [{ key: 'container', value: s.container }] : [];
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

// apiPath is the API request of a view's current state (the first of
// listPaths for a list).
export function apiPath(s, now = Date.now()) {
  switch (s.view) {
    case 'connections': case 'listening': case 'flows':
      return listPaths(s)[0];
    case 'summary':
      return '/api/v1/network/summary' + (s.at ? '?' + new URLSearchParams({ at: s.at }) : '');
    case 'map': {
      const q = filterQuery(s);
      const w = mapWindow(s, now);
      q.set('since', w.since);
      q.set('until', w.until);
      return '/api/v1/network/graph?' + q;
    }
    case 'investigate': {
      const q = filterQuery(s);
      const w = windowOf(s, now);
      if (s.kinds.length) q.set('kind', s.kinds.join(','));
      q.set('since', w.since);
      q.set('until', w.until);
      return '/api/v2/events?' + q;
    }
  }
  return '';
}

// filterQuery is what narrows a view, as the API takes it: the sensor,
// the search terms the view can take, the pod, and for Connections the
// TIME_WAIT rows left out unless shown or asked for by a state: term.
function filterQuery(s) {
  const q = new URLSearchParams();
  if (s.sensor_id) q.set('sensor_id', s.sensor_id);
  setScope(q, s, true);
  if (hidesTimeWait(s)) q.append('state', '!TIME_WAIT');
  // a snapshot view at a moment asks for the fleet as it was then
  if (s.at && SNAPSHOT_VIEWS.includes(s.view)) q.set('at', s.at);
  return q;
}

// hidesTimeWait says whether Connections leaves the TIME_WAIT remnants out:
// by default, unless the toggle shows them or a state: term names states.
export function hidesTimeWait(s) {
  return s.view === 'connections' && !s.time_wait && !termsOf(s).some((t) => t.key === 'state');
}

// listPaths are the v1 requests of a list view's page: one, or for a page
// larger than the API's (1000 rows) consecutive API pages of 500.
export function listPaths(s) {
  const per = Math.min(s.page_size, API_MAX_PAGE), n = Math.max(1, Math.ceil(s.page_size / per));
  const out = [];
  for (let i = 0; i < n; i++) {
    const q = filterQuery(s);
    q.set('page', String((s.page - 1) * n + i + 1));
    q.set('page_size', String(per));
    if (s.sort) q.set('sort', s.sort);
    out.push('/api/v1/network/' + listName(s) + '?' + q);
  }
  return out;
}

// timeWaitPath counts what Connections hides: the same filters with
// state=TIME_WAIT, one row (the answer's total is the count).
export function timeWaitPath(s) {
  const q = filterQuery({ ...s, time_wait: true });
  q.append('state', 'TIME_WAIT');
  q.set('page', '1');
  q.set('page_size', '1');
  return '/api/v1/network/connections?' + q;
}

// exportPath downloads the whole result of a view in a format (csv,
// ndjson), streamed by the API: the same filters as the view, Investigate's
// window and kinds; no paging and no sort (the export is in key order).
export function exportPath(s, format, now = Date.now()) {
  const q = filterQuery(s);
  q.set('format', format);
  if (s.view === 'investigate') {
    const w = windowOf(s, now);
    if (s.kinds.length) q.set('kind', s.kinds.join(','));
    q.set('since', w.since);
    q.set('until', w.until);
    return '/api/v2/events/export?' + q;
  }
  return '/api/v2/network/' + listName(s) + '/export?' + q;
}

// moreEventsPath asks for the events after a cursor. The cursor carries
// the first page's window; sending a preset's window again would name a
// later "now" that the API refuses as a different query. The filters must
// be sent again: the cursor is refused without them.
export function moreEventsPath(s, cursor) {
  const q = filterQuery(s);
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

// timeFormat is one formatter per zone: building one costs far more than
// formatting with it, and a page of 1,000 rows formats 2,000 times.
const formats = new Map();
function timeFormat(timeZone) {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
    });
    formats.set(timeZone, f);
  }
  return f;
}

// fmtTime shows a time in the browser's zone (or the zone given), with the
// exact UTC time for the hover title.
export function fmtTime(iso, timeZone) {
  if (!iso) return { text: '', title: '' };
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return { text: String(iso), title: '' };
  const parts = timeFormat(timeZone).formatToParts(d).reduce((m, p) => (m[p.type] = p.value, m), {});
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
// the browser's zone (to the second for the time control's exact moment),
// and fromLocalInput back.
export function localInput(iso, seconds = false) {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}` + (seconds ? ':' + p(d.getSeconds()) : '');
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

// ---- the search box ----

// The search box's terms, as the URL and the API name them, in the order
// the box lists them in its help. A term's API name is its URL name, so a
// pivot link, a bookmark and the box all say the same thing.
export const FILTER_KEYS = ['addr', 'host', 'port', 'binary', 'binary_path', 'dns', 'answer', 'container', 'state', 'q'];
// How the box writes each: binary and binary_path are both proc:, the
// value tells them apart (a path has a /); an address is typed bare, and
// so is a bare word (q).
const PREFIX = { addr: 'addr', host: 'host', port: 'port', binary: 'proc', binary_path: 'proc', dns: 'dns', answer: 'answer', container: 'container', state: 'state' };
export const TERM_NAMES = ['addr', 'host', 'port', 'proc', 'dns', 'answer', 'container', 'state'];
// The API takes at most 32 values of a filter, of at most 255 bytes.
const MAX_VALUES = 32;

// What a view's rows lack, by filter: a term the view cannot take is not
// sent (the API would refuse the whole request) but shown as not applied.
const LACKS = {
  connections: { dns: 'DNS names', answer: 'DNS answers' },
  listening: { state: 'states (all are LISTEN)', dns: 'DNS names', answer: 'DNS answers' },
  udp: { state: 'TCP states', dns: 'DNS names', answer: 'DNS answers' },
  flows: { dns: 'DNS names', answer: 'DNS answers' },
  map: { dns: 'DNS names', answer: 'DNS answers' },
  investigate: {},
};
const VIEW_NAMES = { connections: 'Connections', listening: 'TCP listening services', udp: 'UDP sockets', flows: 'Flows', map: 'Map', investigate: 'Investigate' };

function listOf(s) {
  return s.view === 'investigate' || s.view === 'map' ? s.view : listName(s);
}

// takes says whether a view can be filtered by an API filter.
export function takes(s, key) {
  const lacks = LACKS[listOf(s)];
  return !!lacks && !lacks[key];
}

// unapplied lists the terms of a state that its view cannot take, each
// with the reason to show: they stay in the URL (another view may take
// them) but must not look applied.
export function unapplied(s) {
  const lacks = LACKS[listOf(s)] || {};
  return termsOf(s).filter((t) => lacks[t.key]).map((t) => ({
    term: formatSearch([t]),
    why: `${VIEW_NAMES[listOf(s)]} rows have no ${lacks[t.key]}` + (t.key === 'dns' || t.key === 'answer' ? '; Investigate has them' : ''),
  }));
}

function isIPv4(v) {
  const p = v.split('.');
  return p.length === 4 && p.every((x) => /^(0|[1-9]\d{0,2})$/.test(x) && Number(x) <= 255);
}

function isIPv6(v) {
  if (!/^[0-9A-Fa-f:.]+$/.test(v)) return false;
  const halves = v.split('::');
  if (halves.length > 2) return false;
  const parts = (x) => (x === '' ? [] : x.split(':'));
  let groups = [...parts(halves[0]), ...(halves.length === 2 ? parts(halves[1]) : [])];
  let n = groups.length;
  const last = groups[n - 1];
  if (last && last.includes('.')) {
    // an IPv4 tail (::ffff:10.0.0.1) stands for two groups
    if (!isIPv4(last)) return false;
    groups = groups.slice(0, -1);
    n++;
  }
  if (!groups.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? n <= 7 : n === 8;
}

// isAddress says whether v is an IPv4 or IPv6 address, as the API reads
// one (no zone).
export function isAddress(v) {
  return isIPv4(v) || isIPv6(v);
}

// isAddressOrCIDR also takes a prefix, 10.0.0.0/8 or 2001:db8::/32.
export function isAddressOrCIDR(v) {
  const m = /^([^/]+)\/(0|[1-9]\d{0,2})$/.exec(v);
  if (!m) return isAddress(v);
  const bits = Number(m[2]);
  return (isIPv4(m[1]) && bits <= 32) || (isIPv6(m[1]) && bits <= 128);
}

const bytes = (v) => new TextEncoder().encode(v).length;

// checkValue validates one value of an API filter as the box and the URL
// take it: the same rules, so what the URL holds the box can write back.
// It returns an error to show, or ''.
function checkValue(key, v) {
  if (v === '') return 'needs a value';
  if (bytes(v) > MAX_SCOPE) return 'at most ' + MAX_SCOPE + ' bytes';
  switch (key) {
    case 'addr': return isAddressOrCIDR(v) ? '' : 'is not an IP address or CIDR prefix (10.0.0.1, 10.0.0.0/8, 2001:db8::/32)';
    case 'answer': return isAddress(v) ? '' : 'is not an IP address';
    case 'port': return /^[1-9]\d{0,4}$/.test(v) && Number(v) <= 65535 ? '' : 'is not a port (1 to 65535)';
    case 'binary': case 'binary_path':
      if (v === '*') return 'a prefix needs at least one character before the *';
      if ((key === 'binary_path') !== v.includes('/')) return key === 'binary' ? 'a binary name has no /' : 'a binary path has a /';
      return '';
    case 'dns': return /^(\*\.)?[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(v) ? '' : 'is not a DNS name, or *.<name> for the names under it';
    case 'state': return /^!?[A-Za-z][A-Za-z_-]*$/.test(v) ? '' : 'is not a state (ESTABLISHED, !TIME_WAIT, ...)';
    case 'container': return v.trim() === v ? '' : 'has spaces around it';
    // As the API reads them: a host name (or a prefix of one, web-*), and
    // one whole word (a binary, a host, a DNS name) without spaces or *.
    case 'host': return /^[A-Za-z0-9_.-]+\*?$/.test(v) ? '' : 'is not a host name, or a prefix of one ending in * (web-1, web-*)';
    case 'q': return /[\s*]/.test(v) ? 'is not one word: a word finds a binary, a host or a DNS name whole (for a prefix use proc:, host: or dns:)' : '';
  }
  return '';
}

// termsIn reads the search terms of a URL, in their order. A value the
// box could not have written is dropped, as any invalid URL part is.
function termsIn(q) {
  const out = [];
  for (const [key, raw] of q) {
    if (!FILTER_KEYS.includes(key)) continue;
    const value = key === 'container' ? raw.trim() : raw;
    if (checkValue(key, value)) continue;
    if (out.some((t) => t.key === key && t.value === value)) continue;
    if (out.filter((t) => t.key === key).length >= MAX_VALUES) continue;
    out.push({ key, value });
  }
  return out;
}

// tokens splits the box's text into words. A word is key:value, key:"a
// quoted value" or "a quoted word" (with \" and \\ inside quotes), or a
// run of characters without spaces.
function tokens(text) {
  const out = [];
  let i = 0;
  const space = (c) => /\s/.test(c);
  for (;;) {
    while (i < text.length && space(text[i])) i++;
    if (i >= text.length) return { tokens: out };
    const start = i;
    let word = '';
    let key = null, quoted = false;
    while (i < text.length && !space(text[i])) {
      if (text[i] !== '"') { word += text[i++]; continue; }
      // A quote opens a word or the value after key:, nowhere else.
      if (word !== '' && !/^[A-Za-z_]+:$/.test(word)) return { error: `a quote may only start a word or a value: ${text.slice(start, i + 1)}` };
      if (word) key = word.slice(0, -1);
      word = '';
      i++;
      for (;;) {
        if (i >= text.length) return { error: 'unclosed quote: ' + text.slice(start) };
        if (text[i] === '"') break;
        if (text[i] === '\\' && i + 1 < text.length) i++;
        word += text[i++];
      }
      i++;
      quoted = true;
      if (i < text.length && !space(text[i])) return { error: 'a space must follow the closing quote: ' + text.slice(start, i + 1) };
      break;
    }
    out.push({ key, word, quoted, text: text.slice(start, i) });
  }
}

// parseSearch reads what was typed into the search box: an address or
// CIDR (addr), host:, port:, proc: (binary; a value with a / is
// binary_path), dns:, answer:, container:, state: (state:!TIME_WAIT) and
// addr: terms, or a bare word (q, matched by the API against binaries,
// host names and DNS names). Terms of different kinds AND; the same kind
// twice ORs, as the API's repeated filters do. It returns the terms in
// their order, as {key, value} with the API's names, and the errors to
// show; a text with any error is not applied.
export function parseSearch(text) {
  const tk = tokens(text || '');
  if (tk.error) return { terms: [], errors: [tk.error] };
  const terms = [], errors = [];
  for (const t of tk.tokens) {
    let key, value = t.word;
    if (t.quoted) key = t.key === null ? 'q' : t.key.toLowerCase();
    // What looks like an address is read as one, so a mistyped one
    // (10.0.0.256, 10.0.0.0/33) is an error, not a word to search for.
    else if (isAddressOrCIDR(t.word) || /^\d+(\.\d+){1,3}(\/\d*)?$|^[0-9A-Fa-f:]*::?[0-9A-Fa-f:.]*\/\d*$/.test(t.word)) key = 'addr';
    else {
      const m = /^([A-Za-z_]+):(.*)$/s.exec(t.word);
      if (m) { key = m[1].toLowerCase(); value = m[2]; } else key = 'q';
    }
    if (key !== 'q' && !TERM_NAMES.includes(key)) {
      errors.push(`"${key}:" is not a search term; the terms are ${TERM_NAMES.map((n) => n + ':').join(' ')}, an address or a word`);
      continue;
    }
    if (key === 'proc') key = value.includes('/') ? 'binary_path' : 'binary';
    const bad = checkValue(key, value);
    if (bad) { errors.push(`${t.text} ${bad}`); continue; }
    if (terms.some((x) => x.key === key && x.value === value)) continue;
    terms.push({ key, value });
  }
  for (const k of FILTER_KEYS) {
    if (terms.filter((t) => t.key === k).length > MAX_VALUES) errors.push(`at most ${MAX_VALUES} ${PREFIX[k] || 'word'} terms`);
  }
  return { terms, errors };
}

function quote(v) {
  return '"' + v.replace(/[\\"]/g, '\\$&') + '"';
}

// formatSearch writes terms as the box shows them; parseSearch reads the
// text back to the same terms.
export function formatSearch(terms) {
  return (terms || []).map(({ key, value }) => {
    if (key === 'addr') return value;
    const plain = !/[\s"\\]/.test(value) && value !== '';
    if (key === 'q') return plain && !isAddressOrCIDR(value) && !/^[A-Za-z_]+:/.test(value) ? value : quote(value);
    return PREFIX[key] + ':' + (plain ? value : quote(value));
  }).join(' ');
}

// searchChange is the state change of a search: its terms replace the
// view's, paging starts again, and the selected event is left.
export function searchChange(terms) {
  const c = terms.find((t) => t.key === 'container');
  return { terms, container: c ? c.value : '', page: 1, event: '' };
}

// scopeChange applies the Container/Pod field (scopeFilter's change) to a
// state's terms: a container replaces the container terms, a pod drops
// them (the field names one of the two).
export function scopeChange(s, change) {
  const terms = termsOf(s).filter((t) => t.key !== 'container');
  if (change.container) terms.push({ key: 'container', value: change.container });
  return { ...searchChange(terms), pod: change.pod };
}

// ---- pivots ----

// pivotURL is the URL of a view narrowed by terms (and the extra state
// given, a sensor for one): a new question, so the other terms are left;
// paging starts again. Investigate keeps its window when the pivot starts
// there, so the question is asked of the same stretch of time.
export function pivotURL(from, to, terms, extra = {}) {
  const view = to === 'udp' ? 'listening' : to;
  const s = { view, sensor_id: '', terms, pod: '', tab: to === 'udp' ? 'udp' : 'tcp', page: 1, sort: '', kinds: [], event: '',
    page_size: from.view === view && from.page_size ? from.page_size : DEFAULT_PAGE_SIZE,
    window: DEFAULT_WINDOW, since: '', until: '', at: from.at || '', span: from.span || DEFAULT_SPAN, ...extra };
  if (view === 'investigate' && !extra.window) {
    if (from.view === 'map' && from.at) Object.assign(s, { window: 'custom', ...mapWindow(from) });
    else if (from.view === 'investigate' || from.view === 'map') Object.assign(s, { window: from.window, since: from.since, until: from.until });
    else if (from.at) Object.assign(s, { window: 'custom', ...centredWindow(from.at) });
  }
  return routeURL(s);
}

// listOfView is the list a pivot from a row stays in.
export function pivotTarget(s) {
  return s.view === 'investigate' ? 'investigate' : listName(s);
}

const noAddress = (a) => !a || a === '::' || a === '0.0.0.0';

// eventLinks are the rows an event belongs to: the flow and the
// connection (by its sensor, the far address and the source port: the
// source's ephemeral port names one connection on that sensor), and the
// DNS resolution that gave the address (answer=). A DNS event links to the
// connections, flows and connects to the addresses it answered.
export function eventLinks(e, s) {
  const out = [];
  const sensor = { sensor_id: e.sensor_id };
  if (e.kind && e.kind.startsWith('dns_')) {
    for (const a of (e.answers || []).slice(0, 4)) {
      out.push({ rel: 'connections', label: 'Connections to ' + a, href: pivotURL(s, 'connections', [{ key: 'addr', value: a }], { ...sensor, time_wait: true }) });
      out.push({ rel: 'flows', label: 'Active flows to ' + a, href: pivotURL(s, 'flows', [{ key: 'addr', value: a }], sensor) });
      out.push({ rel: 'connects', label: 'Connects to ' + a, href: pivotURL(s, 'investigate', [{ key: 'addr', value: a }], { ...sensor, kinds: ['network_connect'] }) });
    }
    return out;
  }
  if (noAddress(e.dst_address) || !e.src_port) return out;
  const by = [{ key: 'addr', value: e.dst_address }, { key: 'port', value: String(e.src_port) }];
  if (e.kind === 'network_flow') out.push({ rel: 'flow', label: 'This flow (closed): its event', href: pivotURL(s, 'investigate', by, { ...sensor, kinds: ['network_flow'], event: e.event_id }) });
  else {
    out.push({ rel: 'flow', label: 'Its flow, while open', href: pivotURL(s, 'flows', by, sensor) });
    out.push({ rel: 'flow-closed', label: 'Its flow, once closed', href: pivotURL(s, 'investigate', by, { ...sensor, kinds: ['network_flow'] }) });
  }
  out.push({ rel: 'connection', label: 'Its connection', href: pivotURL(s, 'connections', by, { ...sensor, time_wait: true }) });
  if (e.kind !== 'network_accept' && e.kind !== 'network_listen') {
    out.push({ rel: 'dns', label: 'The DNS lookup that answered ' + e.dst_address, href: pivotURL(s, 'investigate', [{ key: 'answer', value: e.dst_address }], sensor) });
  }
  return out;
}

// ---- the map ----

// What the map groups the graph's nodes into: hosts, containers (a host
// process stays with its host), or services (each server port and each
// client process on its own).
export const GROUPINGS = ['host', 'container', 'service'];

const FINAL_STATES = ['established', 'refused', 'half-closed', 'stale'];

// nodeLabel names a graph node as the map shows it: a label, and a line
// under it (the host it is on).
function nodeLabel(n, byId) {
  const hostname = (id) => { const h = byId.get(id); return h && h.kind === 'host' ? h.hostname || h.sensor_id.slice(0, 8) : ''; };
  switch (n.kind) {
    case 'host': return { label: n.hostname || n.sensor_id.slice(0, 8), sub: n.site ? 'site ' + n.site : '' };
    case 'container': return { label: n.pod ? (n.pod_namespace ? n.pod_namespace + '/' + n.pod : n.pod) : n.name || n.container_id.slice(0, 12), sub: hostname('host:' + n.sensor_id) };
    case 'process': return { label: processLabel(n.binary, n.pid), sub: hostname('host:' + n.sensor_id) };
    case 'service': {
      const p = byId.get(n.parent);
      return { label: (p && p.binary ? p.binary + ' ' : '') + n.protocol + '/' + n.port, sub: hostname('host:' + n.sensor_id) };
    }
    case 'external': return { label: n.name || n.address, sub: n.name ? 'external' : 'external address' };
    case 'ambiguous': return { label: n.address, sub: 'ambiguous' };
  }
  return { label: n.id, sub: '' };
}

// graphModel turns a graph answer (GET /api/v1/network/graph) into what
// the map draws under a grouping: nodes (each a host, container, process,
// service, external peer or ambiguous address) and edges between them,
// the answer's edges summed per (source, target) pair. Both are sorted by
// id, so one answer always gives one model.
export function graphModel(d, group) {
  const byId = new Map((d.nodes || []).map((n) => [n.id, n]));
  const up = (id, stop) => {
    let n = byId.get(id);
    while (n && !stop(n) && n.parent && byId.has(n.parent)) n = byId.get(n.parent);
    return n;
  };
  // groupOf is the node an end of an edge is drawn as; service is the
  // edge's service (the port the target listens on), for service grouping.
  const groupOf = (id, service) => {
    const n = byId.get(id);
    if (!n) return { id, kind: 'unknown' };
    if (n.kind === 'external' || n.kind === 'ambiguous') return n;
    if (group === 'host') return up(id, (x) => x.kind === 'host');
    if (group === 'container') return up(id, (x) => x.kind === 'host' || x.kind === 'container');
    return service && byId.has(service) ? byId.get(service) : n;
  };
  const nodes = new Map(), edges = new Map();
  const addNode = (n) => {
    if (nodes.has(n.id)) return nodes.get(n.id);
    const { label, sub } = nodeLabel(n, byId);
    const m = { id: n.id, kind: n.kind, label, sub, sensor_id: n.sensor_id || '', degree: 0 };
    if (n.kind === 'ambiguous') m.candidates = (n.candidates || []).map((c) => byId.has(c) ? labelWithHost(nodeLabel(byId.get(c), byId)) : c);
    if (n.kind === 'external') { m.name = n.name || ''; m.address = n.address || ''; }
    nodes.set(n.id, m);
    return m;
  };
  for (const e of d.edges || []) {
    const a = addNode(groupOf(e.source, '')), b = addNode(groupOf(e.target, e.service));
    const key = a.id + ' → ' + b.id;
    let m = edges.get(key);
    if (!m) {
      m = { id: key, source: a.id, target: b.id, parts: [], connections: 0, active: 0, bytes_client_to_server: 0, bytes_server_to_client: 0,
        first_seen: e.first_seen, last_seen: e.last_seen, end_states: Object.fromEntries(FINAL_STATES.map((st) => [st, 0])),
        ports: [], protocols: [], peer_addresses: [], resolutions: [], clients: [], servers: [] };
      edges.set(key, m);
      a.degree++;
      if (b !== a) b.degree++;
    }
    m.parts.push(e.id);
    for (const k of ['connections', 'active', 'bytes_client_to_server', 'bytes_server_to_client']) m[k] += Number(e[k]) || 0;
    for (const st of FINAL_STATES) m.end_states[st] += Number((e.end_states || {})[st]) || 0;
    if (e.first_seen < m.first_seen) m.first_seen = e.first_seen;
    if (e.last_seen > m.last_seen) m.last_seen = e.last_seen;
    addTo(m.ports, e.port);
    addTo(m.protocols, e.protocol);
    addTo(m.resolutions, e.resolution);
    for (const p of e.peer_addresses || []) addTo(m.peer_addresses, p);
    addTo(m.clients, byId.get(e.source));
    addTo(m.servers, byId.get(e.target));
  }
  const byID = (x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
  const out = { nodes: [...nodes.values()].sort(byID), edges: [...edges.values()].sort(byID) };
  for (const e of out.edges) { e.ports.sort((x, y) => x - y); e.peer_addresses.sort(); }
  return out;
}

function addTo(list, v) {
  if (v != null && !list.includes(v)) list.push(v);
}

function labelWithHost(l) {
  return l.sub ? l.label + ' on ' + l.sub : l.label;
}

// Inner nodes are the fleet's own (hosts, containers, processes,
// services); outer ones are what no sensor is (external peers) or several
// could be (ambiguous addresses).
const OUTER = ['external', 'ambiguous'];
const SPACING = 34; // user units between neighbours on a ring

// layout places a model's nodes on two rings: the fleet's own on the
// inner one in id order (so a host's processes sit together), external and
// ambiguous peers on the outer one, each near the mean angle of the nodes
// it talks to. No randomness and no iteration: one model, one picture, in
// time linear in its size (plus a sort).
export function layout(model) {
  const inner = model.nodes.filter((n) => !OUTER.includes(n.kind));
  const outer = model.nodes.filter((n) => OUTER.includes(n.kind));
  const pos = new Map();
  const ring = (n) => Math.max(90, (n * SPACING) / (2 * Math.PI));
  const r1 = ring(inner.length);
  inner.forEach((n, i) => {
    const a = inner.length === 1 ? -Math.PI / 2 : (2 * Math.PI * i) / inner.length - Math.PI / 2;
    pos.set(n.id, { x: r1 * Math.cos(a), y: r1 * Math.sin(a), a });
  });
  if (outer.length) {
    // the mean direction of each outer node's inner neighbours
    const sum = new Map(outer.map((n) => [n.id, { x: 0, y: 0 }]));
    for (const e of model.edges) {
      for (const [o, i] of [[e.source, e.target], [e.target, e.source]]) {
        const s = sum.get(o), p = pos.get(i);
        if (s && p) { s.x += Math.cos(p.a); s.y += Math.sin(p.a); }
      }
    }
    const want = outer.map((n) => {
      const s = sum.get(n.id);
      return { n, a: s.x === 0 && s.y === 0 ? Math.PI : Math.atan2(s.y, s.x) };
    }).sort((x, y) => x.a - y.a || (x.n.id < y.n.id ? -1 : 1));
    const r2 = Math.max(r1 + 150, ring(outer.length));
    // evenly spaced, in the order of the angles wanted, starting at the
    // first one's: each peer keeps its side of the picture
    const start = want[0].a;
    want.forEach(({ n }, i) => {
      const a = outer.length === 1 ? start : start + (2 * Math.PI * i) / outer.length;
      pos.set(n.id, { x: r2 * Math.cos(a), y: r2 * Math.sin(a), a });
    });
  }
  return pos;
}

// fitBox is the viewBox that shows every position, with room for labels.
export function fitBox(pos, pad = 90) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const p of pos.values()) {
    x0 = Math.min(x0, p.x); y0 = Math.min(y0, p.y); x1 = Math.max(x1, p.x); y1 = Math.max(y1, p.y);
  }
  if (x0 === Infinity) return { x: -200, y: -150, w: 400, h: 300 };
  return { x: x0 - pad, y: y0 - pad, w: x1 - x0 + 2 * pad, h: y1 - y0 + 2 * pad };
}

// zoomBox zooms a viewBox by factor (above 1: in) about the point (fx,
// fy) in its own units, which stays where it is on screen. The zoom is
// bounded: from a quarter of the fitted picture to 40 times it.
export function zoomBox(vb, factor, fx, fy, fit) {
  const minW = fit.w / 40, maxW = fit.w * 4;
  const w = Math.min(maxW, Math.max(minW, vb.w / factor));
  const k = w / vb.w;
  return { x: fx - (fx - vb.x) * k, y: fy - (fy - vb.y) * k, w, h: vb.h * k };
}

// panBox moves a viewBox by (dx, dy) of its own units.
export function panBox(vb, dx, dy) {
  return { ...vb, x: vb.x - dx, y: vb.y - dy };
}

// edgeLinks are where an edge's flows are: the active ones (Flows) and
// the completed ones (network_flow events in Investigate, over the map's
// window), narrowed to the edge's ends. The flows are asked of the client's
// sensor and binaries when the client is a sensor's, else of the
// server's: the server addresses and ports name the far end either way.
export function edgeLinks(e, s) {
  const own = (list) => list.filter((n) => n && n.sensor_id);
  const side = own(e.clients).length ? own(e.clients) : own(e.servers);
  const sensors = [...new Set(side.map((n) => n.sensor_id))];
  const terms = [];
  for (const a of e.peer_addresses.slice(0, MAX_VALUES)) terms.push({ key: 'addr', value: a });
  for (const p of e.ports.slice(0, MAX_VALUES)) terms.push({ key: 'port', value: String(p) });
  for (const b of [...new Set(side.map((n) => n.binary).filter(Boolean))].slice(0, MAX_VALUES)) terms.push({ key: 'binary', value: b });
  const extra = sensors.length === 1 ? { sensor_id: sensors[0] } : {};
  // (Investigate keeps the map's window: pivotURL carries it over.)
  return [
    { rel: 'closed', label: 'Completed flows (network_flow events)', href: pivotURL(s, 'investigate', terms, { ...extra, kinds: ['network_flow'] }) },
    { rel: 'active', label: 'Active flows', href: pivotURL(s, 'flows', terms, extra) },
  ];
}

// ---- findings ----

export const FINDING_KINDS = EVENT_KINDS.filter((k) => k.startsWith('baseline_'));
// How far back the Summary looks for findings.
export const FINDINGS_WINDOW = '7d';

// findingsPath asks for the newest findings of the fleet.
export function findingsPath(now = Date.now(), at = '') {
  const w = windowOf({ window: FINDINGS_WINDOW }, at ? Date.parse(at) : now);
  return '/api/v2/events?' + new URLSearchParams({ kind: FINDING_KINDS.join(','), since: w.since, until: w.until, limit: '1000' });
}

// newestFindings keeps the newest n findings of each sensor, the sensors
// in the order of their newest finding (events come newest first).
export function newestFindings(events, n = 3) {
  const by = new Map();
  for (const e of events || []) {
    const list = by.get(e.sensor_id) || [];
    if (!by.has(e.sensor_id)) by.set(e.sensor_id, list);
    if (list.length < n) list.push(e);
  }
  return [...by.values()];
}

// findingText says what a finding found new, in a few words.
export function findingText(e) {
  const bin = e.binary || '?';
  switch (e.kind) {
    case 'baseline_new_listener': return `${bin} listens on ${e.protocol} ${e.src_port}`;
    case 'baseline_new_destination': return `${bin} → ${e.query_name || endpoint(e.dst_address, e.dst_port)}` + (e.query_name ? ':' + e.dst_port : '');
    case 'baseline_new_domain': return `${bin} looked up ${e.query_name}`;
    case 'baseline_new_peer': return `${bin}: ${e.src_address} ↔ ${e.dst_address}`;
    // The rule writes its own sentence (count, usual count, deviations).
    case 'baseline_connection_count': return `connections ${e.state}: ${e.query_name}`;
  }
  return e.kind;
}

// findingURL opens Investigate on a finding: its kind and sensor over the
// Summary's findings window (ending at the Summary's moment, if it has
// one), the finding selected.
export function findingURL(e, at = '') {
  const win = at ? { window: 'custom', ...windowOf({ window: FINDINGS_WINDOW }, Date.parse(at)) } : { window: FINDINGS_WINDOW };
  return pivotURL({ view: 'summary' }, 'investigate', [], { sensor_id: e.sensor_id, kinds: [e.kind], ...win, event: e.event_id });
}

// ---- the time control ----

// The views that show a snapshot of the fleet, now or at a moment (at=);
// Investigate keeps a time window of its own.
export const SNAPSHOT_VIEWS = ['connections', 'listening', 'flows', 'summary', 'map'];

// The timeline's spans, each as 120 bars of a whole step (ms): a step of
// at least the sensors' usual interval (15 s), so each bar holds every
// sensor once.
export const SPANS = { '1h': 30e3, '6h': 180e3, '24h': 720e3, '7d': 5040e3 };
export const DEFAULT_SPAN = '1h';
const spanMs = (span) => WINDOWS[span] || WINDOWS[DEFAULT_SPAN];

const RFC3339 = /^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?([Zz]|[+-]\d\d:\d\d)$/;

// atText writes a moment as at= says it in the URL and to the API: RFC
// 3339 in UTC, the milliseconds only when there are some.
export function atText(ms) {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

// atIn reads at= of a URL: RFC 3339 or Unix milliseconds, as the API
// takes it; anything else is "now" ('').
export function atIn(v) {
  if (!v) return '';
  const ms = /^\d{1,15}$/.test(v) ? Number(v) : RFC3339.test(v) ? Date.parse(v.replace(' ', 'T')) : NaN;
  return Number.isNaN(ms) ? '' : atText(ms);
}

// mapWindow is the Map's window: a preset ends at the moment shown (now,
// or at=); a custom one is as given, but at a moment ends by then (the
// API refuses a graph at a moment of a later window), keeping its length.
export function mapWindow(s, now = Date.now()) {
  const at = s.at ? Date.parse(s.at) : now;
  const w = windowOf(s, at);
  if (!s.at || Date.parse(w.until) <= at) return w;
  return { since: new Date(at - (Date.parse(w.until) - Date.parse(w.since))).toISOString(), until: new Date(at).toISOString() };
}

// centredWindow is the Investigate window of a pivot from a moment: the
// default window's length, with the moment in its middle.
export function centredWindow(at) {
  const t = Date.parse(at), half = WINDOWS[DEFAULT_WINDOW] / 2;
  return { since: new Date(t - half).toISOString(), until: new Date(t + half).toISOString() };
}

// spanFor is the span a timeline (ending now) shows a moment in: the
// current one if it holds the moment, else the shortest that does (the
// longest when none does).
export function spanFor(at, now = Date.now(), current = '') {
  const age = now - Date.parse(at);
  if (SPANS[current] && age <= spanMs(current)) return current;
  return Object.keys(SPANS).find((k) => age <= spanMs(k)) || '7d';
}

// timelineWindow is the timeline's request window: the span, ending at the
// first whole step after now, so the bars stay put between refreshes.
export function timelineWindow(span, now = Date.now()) {
  const step = SPANS[span] || SPANS[DEFAULT_SPAN];
  const until = Math.ceil(now / step) * step;
  return { since: until - spanMs(span), until, step };
}

// timelinePath asks GET /api/v2/network/timeline for a span's bars, of
// one sensor when the view has one.
export function timelinePath(span, sensor = '', now = Date.now()) {
  const w = timelineWindow(span, now);
  const q = new URLSearchParams();
  if (sensor) q.set('sensor_id', sensor);
  q.set('since', atText(w.since));
  q.set('until', atText(w.until));
  q.set('step', w.step / 1000 + 's');
  return '/api/v2/network/timeline?' + q;
}

// timelineBars lays out a timeline answer as bars in a box of width x
// height: one a bucket, left to right, its height the fleet's connections
// (linear, the tallest filling the box; a bucket with any has at least a
// pixel). A bar's moment is its bucket's end, no later than now: the
// counts are each sensor's newest heartbeat of the bucket, the state in
// force at its end.
export function timelineBars(d, width, height, now = Date.now()) {
  const buckets = (d && d.buckets) || [];
  const step = Number(d && d.step_secs) * 1000 || 0;
  const n = buckets.length;
  const max = Math.max(0, ...buckets.map((b) => Number(b.connections) || 0));
  const slot = n ? width / n : 0;
  const gap = slot > 3 ? 1 : 0;
  return buckets.map((b, i) => {
    const c = Number(b.connections) || 0;
    const h = max ? Math.max(c ? 1 : 0, (c / max) * height) : 0;
    const start = Date.parse(b.time);
    return { i, x: i * slot, w: slot - gap, y: height - h, h, connections: c, sensors: Number(b.sensors) || 0,
      start, moment: Math.min(start + step, now) };
  });
}

// barAt is the bar under x (box units) of n bars across width.
export function barAt(x, width, n) {
  if (!n || !(width > 0)) return -1;
  return Math.min(n - 1, Math.max(0, Math.floor((x / width) * n)));
}

// barOf is the bar that shows a moment (its bucket holds it; a moment at
// a bucket's end is that bucket's, as the bar's moment is), or -1 outside
// them.
export function barOf(bars, at) {
  const t = Date.parse(at);
  for (const b of bars) if (t > b.start && t <= b.moment) return b.i;
  return bars.length && t === bars[0].start ? 0 : -1;
}

// momentX is where a moment falls on a timeline of width drawn over a
// window (ms), or null outside it.
export function momentX(at, w, width) {
  const t = Date.parse(at);
  if (!(t >= w.since && t <= w.until)) return null;
  return ((t - w.since) / (w.until - w.since)) * width;
}

// moveBar is the bar an arrow key moves to, from bar i of n: left and
// right one, Page Up and Down ten, Home and End the ends; -1 for other keys.
export function moveBar(key, i, n) {
  const to = { ArrowLeft: i - 1, ArrowRight: i + 1, PageUp: i - 10, PageDown: i + 10, Home: 0, End: n - 1 }[key];
  return to === undefined || !n ? -1 : Math.min(n - 1, Math.max(0, to));
}
