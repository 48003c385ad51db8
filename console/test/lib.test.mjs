// Unit tests of the Console's pure logic; run by console/lib_test.go
// (node --test).
import test from 'node:test';
import assert from 'node:assert/strict';
import * as L from '../web/lib.mjs';

const S = 'a83589a9-e375-4180-a027-306dd923cfb0';

test('parseRoute reads every view and drops what is invalid', () => {
  assert.deepEqual(L.parseRoute('/network/connections', `?sensor_id=${S.toUpperCase()}&page=3&page_size=50&sort=-duration_secs`),
    { view: 'connections', sensor_id: S, page: 3, page_size: 50, sort: '-duration_secs', container: '', pod: '' });
  assert.deepEqual(L.parseRoute('/network/connections/', '?sensor_id=nope&page=0&page_size=501&sort=drop_table'),
    { view: 'connections', sensor_id: '', page: 1, page_size: 100, sort: '', container: '', pod: '' });
  assert.deepEqual(L.parseRoute('/network/listening', '?tab=udp&sort=service&container=web-1'),
    { view: 'listening', sensor_id: '', tab: 'udp', page: 1, page_size: 100, sort: 'service', container: 'web-1', pod: '' });
  // a sort of the UDP list that the TCP list lacks is dropped on the TCP tab
  assert.equal(L.parseRoute('/network/listening', '?sort=remote_port').sort, '');
  assert.equal(L.parseRoute('/network/listening', '?tab=udp&sort=remote_port').sort, 'remote_port');
  assert.equal(L.parseRoute('/elsewhere', '').view, '');
  const inv = L.parseRoute('/investigate', `?kind=dns_query,bogus,network_flow,dns_query&window=6h&event=${S}`);
  assert.deepEqual(inv, { view: 'investigate', sensor_id: '', kinds: ['dns_query', 'network_flow'], since: '', until: '', window: '6h', event: S,
    container: '', pod: '' });
  const custom = L.parseRoute('/investigate', '?since=2026-11-25T10:00:00%2B01:00&until=2026-11-25T12:00:00Z');
  assert.equal(custom.window, 'custom');
  assert.equal(custom.since, '2026-11-25T09:00:00.000Z');
  assert.equal(L.parseRoute('/investigate', '?since=yesterday&until=2026-11-25T12:00:00Z').window, '1h');
  assert.equal(L.parseRoute('/investigate', '?window=3y').window, '1h');
});

test('routeURL is the inverse of parseRoute and leaves defaults out', () => {
  const urls = [
    '/network/summary',
    '/network/connections',
    `/network/connections?sensor_id=${S}&page=2&page_size=500&sort=-pid`,
    '/network/listening?tab=udp&page=4',
    '/network/flows?sort=-bytes_sent',
    `/investigate?sensor_id=${S}&kind=network_connect%2Cdns_query&window=24h&event=${S}`,
    '/investigate?since=2026-11-25T09%3A00%3A00.000Z&until=2026-11-25T12%3A00%3A00.000Z',
    '/network/flows?pod=mesh%2Fenvoy-0&page=2',
    `/network/listening?tab=udp&sensor_id=${S}&container=3f2a9c1b7d4e`,
    '/investigate?pod=prod%2Fdb-0&kind=dns_query',
  ];
  for (const u of urls) {
    const [p, q = ''] = u.split('?');
    assert.equal(L.routeURL(L.parseRoute(p, q)), u);
  }
  assert.equal(L.routeURL({ view: 'connections', sensor_id: '', page: 1, page_size: 100, sort: '' }), '/network/connections');
});

test('apiPath asks the API for exactly the view state', () => {
  const s = L.parseRoute('/network/listening', `?tab=udp&sensor_id=${S}&page=2&page_size=25&sort=-local_port`);
  assert.equal(L.apiPath(s), `/api/v1/network/udp?sensor_id=${S}&page=2&page_size=25&sort=-local_port`);
  assert.equal(L.apiPath(L.parseRoute('/network/connections', '')), '/api/v1/network/connections?page=1&page_size=100');
  assert.equal(L.apiPath(L.parseRoute('/network/summary', '')), '/api/v1/network/summary');
  const now = Date.parse('2026-11-25T12:00:00Z');
  assert.equal(L.apiPath(L.parseRoute('/investigate', '?kind=dns_query&window=15m'), now),
    '/api/v2/events?kind=dns_query&since=2026-11-25T11%3A45%3A00.000Z&until=2026-11-25T12%3A00%3A00.000Z');
  assert.equal(L.moreEventsPath(L.parseRoute('/investigate', `?kind=dns_query&sensor_id=${S}`), 'abc+/='),
    `/api/v2/events?sensor_id=${S}&kind=dns_query&cursor=abc%2B%2F%3D`);
  const c = L.parseRoute('/investigate', '?since=2026-11-20T00:00:00Z&until=2026-11-21T00:00:00Z');
  assert.deepEqual(L.windowOf(c, now), { since: '2026-11-20T00:00:00.000Z', until: '2026-11-21T00:00:00.000Z' });
});

test('the Container/Pod filter: one at a time, in the URL, the API and the cursor', () => {
  // both given: the pod is kept, and the URL written back names it alone
  const both = L.parseRoute('/network/connections', '?container=web-1&pod=mesh/envoy-0');
  assert.deepEqual([both.container, both.pod], ['', 'mesh/envoy-0']);
  assert.equal(L.routeURL(both), '/network/connections?pod=mesh%2Fenvoy-0');
  // blank, too long (the API's 255 bytes) and whitespace-only values are dropped
  assert.equal(L.parseRoute('/network/connections', '?container=' + 'x'.repeat(256)).container, '');
  assert.equal(L.parseRoute('/network/connections', '?container=' + 'x'.repeat(255)).container, 'x'.repeat(255));
  assert.equal(L.parseRoute('/network/connections', '?container=' + 'é'.repeat(128)).container, '', '256 bytes in UTF-8');
  assert.equal(L.parseRoute('/network/connections', '?pod=%20%20').pod, '');
  assert.equal(L.parseRoute('/network/connections', '?container=%20web-1%20').container, 'web-1');
  // the summary has no such filter
  assert.equal(L.apiPath({ view: 'summary', container: 'x' }), '/api/v1/network/summary');
  // the API gets the filter beside the sensor, paging and sort
  const s = L.parseRoute('/network/flows', `?sensor_id=${S}&pod=mesh/envoy-0&page=2&page_size=50&sort=-bytes_sent`);
  assert.equal(L.apiPath(s), `/api/v1/network/flows?sensor_id=${S}&pod=mesh%2Fenvoy-0&page=2&page_size=50&sort=-bytes_sent`);
  assert.equal(L.apiPath(L.parseRoute('/network/connections', '?container=3f2a9c1b7d4e')),
    '/api/v1/network/connections?container=3f2a9c1b7d4e&page=1&page_size=100');
  // Investigate: first page and every later one (the cursor is refused without its filters)
  const now = Date.parse('2026-11-25T12:00:00Z');
  const inv = L.parseRoute('/investigate', '?container=web-1&window=15m');
  assert.equal(L.apiPath(inv, now), '/api/v2/events?container=web-1&since=2026-11-25T11%3A45%3A00.000Z&until=2026-11-25T12%3A00%3A00.000Z');
  assert.equal(L.moreEventsPath(inv, 'c1'), '/api/v2/events?container=web-1&cursor=c1');
  assert.equal(L.moreEventsPath(L.parseRoute('/investigate', '?pod=db-0&kind=dns_query'), 'c1'), '/api/v2/events?pod=db-0&kind=dns_query&cursor=c1');
  // the field: its select says what the text names
  assert.deepEqual(L.scopeFilter('pod', ' prod/db-0 '), { change: { container: '', pod: 'prod/db-0' } });
  assert.deepEqual(L.scopeFilter('container', 'db-0'), { change: { container: 'db-0', pod: '' } });
  assert.deepEqual(L.scopeFilter('pod', '  '), { change: { container: '', pod: '' } });
  assert.match(L.scopeFilter('container', 'x'.repeat(256)).error, /255 bytes/);
});

test('workload names a row\'s pod, container or systemd unit', () => {
  const id = '4f1c2a9b8e7d6c5b4a3928170615f4e3d2c1b0a99887766554433221100ffeed';
  const pod = { container_id: id, container_runtime: 'containerd', pod_uid: '7d2c1e0a-3b4f-4c5d-8e9f-0a1b2c3d4e5f',
    container_name: 'upf', container_image: 'registry.example/telecom/upf:2.4', pod: 'upf-0', pod_namespace: 'telecom', unit: 'x.scope' };
  assert.deepEqual(L.workload(pod), { text: 'telecom/upf-0', title: 'registry.example/telecom/upf:2.4 · container upf, containerd', kind: 'pod' });
  assert.equal(L.workload({ ...pod, pod_namespace: '' }).text, 'upf-0', 'a pod without a namespace');
  assert.deepEqual(L.workload({ container_id: id, container_runtime: 'docker', container_name: 'web-1', container_image: 'nginx:1.27' }),
    { text: 'web-1', title: 'nginx:1.27 · container web-1, docker', kind: 'container' });
  // a container the runtime did not name: its id as docker ps shows it
  assert.deepEqual(L.workload({ container_id: id, container_runtime: 'cri-o', container_name: '', container_image: '', pod: '', unit: '' }),
    { text: '4f1c2a9b8e7d', title: 'image unknown · container 4f1c2a9b8e7d, cri-o', kind: 'container' });
  assert.deepEqual(L.workload({ container_id: '', pod: '', unit: 'nginx.service', container_name: '' }),
    { text: 'nginx.service', title: 'systemd unit', kind: 'unit' });
  assert.deepEqual(L.workload({ container_id: '', container_name: '', pod: '', pod_uid: '', unit: '' }), { text: '', title: '', kind: '' });
  assert.deepEqual(L.workload({}), { text: '', title: '', kind: '' }, 'rows from before the fields');
});

test('sorting cycles ascending, descending', () => {
  assert.equal(L.nextSort('', 'pid'), 'pid');
  assert.equal(L.nextSort('pid', 'pid'), '-pid');
  assert.equal(L.nextSort('-pid', 'pid'), 'pid');
  assert.equal(L.nextSort('-pid', 'binary'), 'binary');
  assert.equal(L.sortState('-pid', 'pid'), 'descending');
  assert.equal(L.sortState('pid', 'pid'), 'ascending');
  assert.equal(L.sortState('pid', 'uid'), 'none');
});

test('formatting', () => {
  const f = (fn, cases) => { for (const [i, want] of cases) assert.equal(fn(i), want, `${fn.name}(${i})`); };
  f(L.fmtDuration, [[null, 'predates sensor'], [undefined, 'predates sensor'], [0, '0s'], [59, '59s'], [61, '1m 01s'],
    [3600, '1h 00m'], [3725, '1h 02m'], [90000, '1d 1h']]);
  f(L.fmtBytes, [[0, '0 B'], [1023, '1023 B'], [1024, '1.0 KiB'], [1536, '1.5 KiB'], [10 * 1024 * 1024, '10 MiB'], [null, '']]);
  assert.equal(L.endpoint('10.0.0.1', 443), '10.0.0.1:443');
  assert.equal(L.endpoint('fe80::1', 22), '[fe80::1]:22');
  assert.equal(L.processLabel('nginx', 42), 'nginx (42)');
  assert.equal(L.processLabel('', null), '—');
  assert.equal(L.serviceLabel('gtp-u'), 'GTP-U');
  assert.equal(L.serviceLabel('pfcp'), 'PFCP');
  assert.equal(L.serviceLabel('radius'), 'RADIUS');
  assert.equal(L.serviceLabel('dns'), 'DNS');
  assert.equal(L.serviceLabel(''), '');
});

test('times show in the given zone with UTC on hover', () => {
  assert.deepEqual(L.fmtTime('2026-11-25T19:04:08.494Z', 'Europe/Berlin'),
    { text: '2026-11-25 20:04:08', title: '2026-11-25 19:04:08.494 UTC' });
  assert.deepEqual(L.fmtTime('2026-07-01T00:30:00Z', 'America/New_York'),
    { text: '2026-06-30 20:30:00', title: '2026-07-01 00:30:00.000 UTC' });
  assert.equal(L.fmtTime('').text, '');
  assert.equal(L.fromLocalInput(L.localInput('2026-11-25T19:04:00.000Z')), '2026-11-25T19:04:00.000Z');
});

test('anomaly grading, chart axis, refresh cadence and error advice', () => {
  assert.equal(L.anomalyLevel(4.2), 'high');
  assert.equal(L.anomalyLevel(-3), 'high');
  assert.equal(L.anomalyLevel(2), 'elevated');
  assert.equal(L.anomalyLevel(0.3), 'normal');
  assert.deepEqual(L.clockSkew(0.4), { text: 'in step', level: 'normal' });
  assert.deepEqual(L.clockSkew(-3.2), { text: '3s behind', level: 'normal' });
  assert.deepEqual(L.clockSkew(30), { text: '30s ahead', level: 'elevated' });
  assert.deepEqual(L.clockSkew(-432000), { text: '5d 0h behind', level: 'high' });
  assert.equal(L.symlog(0), 0);
  assert.equal(L.symlog(9), 1);
  assert.deepEqual(L.ticks(0), [0, 1]);
  assert.deepEqual(L.ticks(2500), [0, 1, 10, 100, 1000]);
  assert.equal(L.refreshMs([]), 15000);
  assert.equal(L.refreshMs([{ interval_secs: 30 }, { interval_secs: 10 }]), 10000);
  assert.equal(L.refreshMs([{ interval_secs: 1 }]), 5000);
  assert.match(L.errorAdvice(401, 'x'), /Sign in again/);
  assert.match(L.errorAdvice(403, 'this token has the viewer role and may not use /api/v1/sql: it needs the analyst role'), /needs the analyst role.*Ask an admin/);
  assert.match(L.errorAdvice(400, 'sort: unknown'), /sort: unknown/);
  assert.match(L.errorAdvice(503, 'down'), /retries/);
  assert.match(L.errorAdvice(0, 'fetch failed'), /cannot be reached/);
});

test('capabilityTags shows what a sensor observes, unavailable as such', () => {
  const tags = L.capabilityTags({
    flow_source: 'ebpf+inet_diag', ebpf: 'active', ebpf_probes: 'inet_sock_set_state,getaddrinfo', ebpf_lost_events: '0',
    attribution_failures: '2', dns: 'active: sendto, getaddrinfo in /lib/libc.so.6', lsm: 'unavailable: the kernel does not offer BPF LSM programs',
    sctp: 'error: permission denied', future_key: 'x',
  });
  assert.deepEqual(tags.map((t) => [t.label, t.state]), [
    ['flow_source ebpf+inet_diag', 'ok'], ['ebpf active', 'ok'], ['dns active', 'ok'], ['lsm unavailable', 'off'], ['sctp error', 'warn']]);
  assert.equal(tags[3].title, 'lsm: unavailable: the kernel does not offer BPF LSM programs');
  assert.deepEqual(L.capabilityTags({ ebpf: 'unavailable: no kernel BTF', ebpf_lost_events: '12' }).map((t) => t.label),
    ['ebpf unavailable', '12 lost']);
  assert.deepEqual(L.capabilityTags({}), []);
  assert.deepEqual(L.capabilityTags(null), []);
  assert.deepEqual(L.capabilityTags({ lsm: '' }), []);
});
