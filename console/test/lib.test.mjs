// Unit tests of the Console's pure logic; run by console/lib_test.go
// (node --test).
import test from 'node:test';
import assert from 'node:assert/strict';
import * as L from '../web/lib.mjs';

const S = 'a83589a9-e375-4180-a027-306dd923cfb0';

test('parseRoute reads every view and drops what is invalid', () => {
  assert.deepEqual(L.parseRoute('/network/connections', `?sensor_id=${S.toUpperCase()}&page=3&page_size=50&sort=-duration_secs`),
    { view: 'connections', sensor_id: S, at: '', span: '1h', page: 3, page_size: 50, sort: '-duration_secs', container: '', pod: '', terms: [], time_wait: false });
  assert.deepEqual(L.parseRoute('/network/connections/', '?sensor_id=nope&page=0&page_size=501&sort=drop_table&time_wait=yes'),
    { view: 'connections', sensor_id: '', at: '', span: '1h', page: 1, page_size: 100, sort: '', container: '', pod: '', terms: [], time_wait: false });
  // 1000 rows a page is the one size above the API's 500 (two API pages)
  assert.equal(L.parseRoute('/network/flows', '?page_size=1000').page_size, 1000);
  assert.equal(L.parseRoute('/network/flows', '?page_size=999').page_size, 100);
  assert.deepEqual(L.parseRoute('/network/listening', '?tab=udp&sort=service&container=web-1'),
    { view: 'listening', sensor_id: '', at: '', span: '1h', tab: 'udp', page: 1, page_size: 100, sort: 'service', container: 'web-1', pod: '',
      terms: [{ key: 'container', value: 'web-1' }] });
  // a sort of the UDP list that the TCP list lacks is dropped on the TCP tab
  assert.equal(L.parseRoute('/network/listening', '?sort=remote_port').sort, '');
  assert.equal(L.parseRoute('/network/listening', '?tab=udp&sort=remote_port').sort, 'remote_port');
  assert.equal(L.parseRoute('/elsewhere', '').view, '');
  const inv = L.parseRoute('/investigate', `?kind=dns_query,bogus,network_flow,dns_query&window=6h&event=${S}`);
  assert.deepEqual(inv, { view: 'investigate', sensor_id: '', kinds: ['dns_query', 'network_flow'], since: '', until: '', window: '6h', event: S,
    container: '', pod: '', terms: [] });
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
  // Connections leaves TIME_WAIT out unless shown, or a state: term asks
  assert.equal(L.apiPath(L.parseRoute('/network/connections', '')), '/api/v1/network/connections?state=%21TIME_WAIT&page=1&page_size=100');
  assert.equal(L.apiPath(L.parseRoute('/network/connections', '?time_wait=1')), '/api/v1/network/connections?page=1&page_size=100');
  assert.equal(L.apiPath(L.parseRoute('/network/connections', '?state=CLOSE_WAIT')), '/api/v1/network/connections?state=CLOSE_WAIT&page=1&page_size=100');
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
  // both given (a container: search term beside the pod): both are kept,
  // the API ANDs them and the URL reads back as written
  const both = L.parseRoute('/network/connections', '?container=web-1&pod=mesh/envoy-0');
  assert.deepEqual([both.container, both.pod], ['web-1', 'mesh/envoy-0']);
  assert.equal(L.routeURL(both), '/network/connections?container=web-1&pod=mesh%2Fenvoy-0');
  // the field replaces the container terms, or drops them for a pod
  const two = L.parseRoute('/network/flows', '?container=a&port=22&container=b');
  assert.equal(L.routeURL({ ...two, ...L.scopeChange(two, { container: 'c', pod: '' }) }), '/network/flows?port=22&container=c');
  assert.equal(L.routeURL({ ...two, ...L.scopeChange(two, { container: '', pod: 'p' }) }), '/network/flows?port=22&pod=p');
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
    '/api/v1/network/connections?container=3f2a9c1b7d4e&state=%21TIME_WAIT&page=1&page_size=100');
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

test('parseSearch reads every term type', () => {
  const p = (text) => L.parseSearch(text);
  const one = (text) => { const r = p(text); assert.deepEqual(r.errors, [], text); assert.equal(r.terms.length, 1, text); return r.terms[0]; };
  assert.deepEqual(one('10.1.0.1'), { key: 'addr', value: '10.1.0.1' });
  assert.deepEqual(one('10.0.0.0/8'), { key: 'addr', value: '10.0.0.0/8' });
  assert.deepEqual(one('2001:db8::1'), { key: 'addr', value: '2001:db8::1' });
  assert.deepEqual(one('abcd::1'), { key: 'addr', value: 'abcd::1' }, 'an IPv6 address is not a term named abcd');
  assert.deepEqual(one('::ffff:10.0.0.1'), { key: 'addr', value: '::ffff:10.0.0.1' });
  assert.deepEqual(one('2001:db8::/32'), { key: 'addr', value: '2001:db8::/32' });
  assert.deepEqual(one('addr:10.2.0.0/16'), { key: 'addr', value: '10.2.0.0/16' });
  assert.deepEqual(one('host:edge-a'), { key: 'host', value: 'edge-a' });
  assert.deepEqual(one('host:edge-*'), { key: 'host', value: 'edge-*' });
  assert.deepEqual(one('port:443'), { key: 'port', value: '443' });
  assert.deepEqual(one('proc:curl'), { key: 'binary', value: 'curl' });
  assert.deepEqual(one('proc:post*'), { key: 'binary', value: 'post*' });
  assert.deepEqual(one('proc:/usr/bin/curl'), { key: 'binary_path', value: '/usr/bin/curl' });
  assert.deepEqual(one('proc:/opt/*'), { key: 'binary_path', value: '/opt/*' });
  assert.deepEqual(one('dns:example.org'), { key: 'dns', value: 'example.org' });
  assert.deepEqual(one('dns:*.evil.example'), { key: 'dns', value: '*.evil.example' });
  assert.deepEqual(one('answer:93.184.216.34'), { key: 'answer', value: '93.184.216.34' });
  assert.deepEqual(one('container:cache'), { key: 'container', value: 'cache' });
  assert.deepEqual(one('state:ESTABLISHED'), { key: 'state', value: 'ESTABLISHED' });
  assert.deepEqual(one('state:!TIME_WAIT'), { key: 'state', value: '!TIME_WAIT' });
  assert.deepEqual(one('nginx'), { key: 'q', value: 'nginx' });
  assert.deepEqual(one('PORT:22'), { key: 'port', value: '22' }, 'term names ignore case');
});

test('parseSearch: several terms AND, the same term ORs, order kept, duplicates once', () => {
  const r = L.parseSearch('  port:443  10.1.0.1 port:22\tproc:curl port:443 ');
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.terms, [{ key: 'port', value: '443' }, { key: 'addr', value: '10.1.0.1' }, { key: 'port', value: '22' }, { key: 'binary', value: 'curl' }]);
  assert.deepEqual(L.parseSearch('').terms, []);
  assert.deepEqual(L.parseSearch('   ').terms, []);
});

test('parseSearch: quoting', () => {
  assert.deepEqual(L.parseSearch('container:"my cache" "two words"'), { terms: [{ key: 'container', value: 'my cache' }],
    errors: ['"two words" is not one word: a word finds a binary, a host or a DNS name whole (for a prefix use proc:, host: or dns:)'] });
  // a quoted address or term is a word, not a filter of its own
  assert.deepEqual(L.parseSearch('"10.1.0.1" "port:22"').terms, [{ key: 'q', value: '10.1.0.1' }, { key: 'q', value: 'port:22' }]);
  assert.deepEqual(L.parseSearch('proc:"/opt/my app/bin/x"').terms, [{ key: 'binary_path', value: '/opt/my app/bin/x' }]);
  assert.deepEqual(L.parseSearch('container:"say \\"hi\\" \\\\ there"').terms, [{ key: 'container', value: 'say "hi" \\ there' }]);
});

test('parseSearch: bad input is an error to show, and nothing is applied', () => {
  const bad = (text, re) => {
    const r = L.parseSearch(text);
    assert.ok(r.errors.length > 0, `${text}: no error`);
    assert.match(r.errors.join(' | '), re, text);
  };
  bad('port:0', /port:0 is not a port/);
  bad('port:65536', /not a port/);
  bad('port:http', /not a port/);
  bad('port:', /port: needs a value/);
  bad('10.0.0.1/33', /10.0.0.1\/33 is not an IP address or CIDR/);
  bad('10.0.0.256', /not an IP address/);
  bad('fe80::/129', /not an IP address/);
  bad('addr:10.0.0.256', /not an IP address or CIDR/);
  bad('addr:fe80::1%eth0', /not an IP address/);
  bad('answer:10.0.0.0/8', /answer:10.0.0.0\/8 is not an IP address/);
  bad('dns:bad!name', /not a DNS name/);
  bad('dns:...', /not a DNS name/);
  bad('proc:*', /prefix needs at least one character/);
  bad('state:TIME_WAIT!', /state:TIME_WAIT! is not a state/);
  bad('state:1', /not a state/);
  bad('user:root', /"user:" is not a search term; the terms are addr: host: port: proc:/);
  bad('container:"unclosed', /unclosed quote/);
  bad('ab"cd"', /a quote may only start a word/);
  bad('"a"b', /a space must follow the closing quote/);
  bad('host:' + 'x'.repeat(256), /at most 255 bytes/);
  bad('host:web*1', /not a host name/);
  bad('ngin*', /ngin\* is not one word/);
  bad(Array.from({ length: 33 }, (_, i) => 'port:' + (i + 1)).join(' '), /at most 32 port terms/);
  // one bad term among good ones: the errors name it
  const r = L.parseSearch('port:22 port:x proc:curl');
  assert.deepEqual(r.errors, ['port:x is not a port (1 to 65535)']);
});

test('formatSearch writes what parseSearch reads back', () => {
  const texts = ['10.1.0.1 host:edge-a port:443 proc:curl proc:/usr/bin/curl dns:*.example.org answer:10.0.0.9 container:cache state:!TIME_WAIT nginx',
    'container:"my cache" "10.1.0.1" "port:22" 2001:db8::/32 container:"say \\"hi\\""'];
  for (const t of texts) {
    const r = L.parseSearch(t);
    assert.deepEqual(r.errors, []);
    assert.equal(L.formatSearch(r.terms), t);
    assert.deepEqual(L.parseSearch(L.formatSearch(r.terms)).terms, r.terms);
  }
});

test('search terms live in the URL: the round trip is exact', () => {
  const urls = [
    '/network/connections?addr=10.1.0.1&port=443&port=22&binary=curl&state=%21TIME_WAIT',
    `/network/connections?sensor_id=${S}&host=edge-*&container=cache&container=web-1&pod=mesh%2Fenvoy-0&page=2&page_size=1000&sort=pid&time_wait=1`,
    '/network/listening?tab=udp&binary_path=%2Fopt%2Fupf%2Fbin%2Fupf&q=upf',
    '/network/flows?addr=2001%3Adb8%3A%3A%2F32&dns=example.org',
    '/investigate?dns=*.example.org&answer=93.184.216.34&q=example.org&kind=dns_query&window=6h',
  ];
  for (const u of urls) {
    const [p, q = ''] = u.split('?');
    const s = L.parseRoute(p, q);
    assert.equal(L.routeURL(s), u);
    // and the box shows what the URL holds: typed back, the same URL
    const typed = L.parseSearch(L.formatSearch(s.terms));
    assert.equal(L.routeURL({ ...s, ...L.searchChange(typed.terms), page: s.page }), u);
  }
  // what the box could not have written is dropped
  assert.deepEqual(L.parseRoute('/network/connections', '?port=0&addr=nope&binary=%2Fusr%2Fbin%2Fx&q=two+words&host=a%20b&port=22').terms,
    [{ key: 'port', value: '22' }]);
  // the summary takes none
  assert.equal(L.routeURL(L.parseRoute('/network/summary', '?port=22')), '/network/summary');
});

test('a term the view cannot take is not sent, and is reported', () => {
  const s = L.parseRoute('/network/connections', '?dns=example.org&port=443');
  assert.equal(L.apiPath(s), '/api/v1/network/connections?port=443&state=%21TIME_WAIT&page=1&page_size=100');
  assert.deepEqual(L.unapplied(s), [{ term: 'dns:example.org', why: 'Connections rows have no DNS names; Investigate has them' }]);
  assert.deepEqual(L.unapplied(L.parseRoute('/network/listening', '?state=LISTEN')), [{ term: 'state:LISTEN', why: 'TCP listening services rows have no states (all are LISTEN)' }]);
  assert.deepEqual(L.unapplied(L.parseRoute('/investigate', '?dns=x.org&state=refused')), []);
  assert.ok(L.apiPath(L.parseRoute('/investigate', '?dns=x.org&answer=10.0.0.1')).startsWith('/api/v2/events?dns=x.org&answer=10.0.0.1&since='));
});

test('a page of 1000 rows is read as two API pages; TIME_WAIT counted; export paths', () => {
  const s = L.parseRoute('/network/connections', '?port=443&page=3&page_size=1000&sort=-pid');
  assert.deepEqual(L.listPaths(s), [
    '/api/v1/network/connections?port=443&state=%21TIME_WAIT&page=5&page_size=500&sort=-pid',
    '/api/v1/network/connections?port=443&state=%21TIME_WAIT&page=6&page_size=500&sort=-pid']);
  assert.deepEqual(L.listPaths(L.parseRoute('/network/flows', '?page=2&page_size=50')), ['/api/v1/network/flows?page=2&page_size=50']);
  assert.equal(L.timeWaitPath(s), '/api/v1/network/connections?port=443&state=TIME_WAIT&page=1&page_size=1');
  assert.equal(L.hidesTimeWait(s), true);
  assert.equal(L.hidesTimeWait(L.parseRoute('/network/connections', '?state=TIME_WAIT')), false);
  assert.equal(L.hidesTimeWait(L.parseRoute('/network/flows', '')), false);
  // the export: the view's filters, no paging, no sort
  assert.equal(L.exportPath(s, 'csv'), '/api/v2/network/connections/export?port=443&state=%21TIME_WAIT&format=csv');
  assert.equal(L.exportPath(L.parseRoute('/network/listening', `?tab=udp&sensor_id=${S}&pod=p&dns=x.org`), 'ndjson'),
    `/api/v2/network/udp/export?sensor_id=${S}&pod=p&format=ndjson`);
  const now = Date.parse('2026-11-25T12:00:00Z');
  assert.equal(L.exportPath(L.parseRoute('/investigate', '?q=curl&kind=dns_query&window=15m'), 'csv', now),
    '/api/v2/events/export?q=curl&format=csv&kind=dns_query&since=2026-11-25T11%3A45%3A00.000Z&until=2026-11-25T12%3A00%3A00.000Z');
  assert.equal(L.moreEventsPath(L.parseRoute('/investigate', '?addr=10.0.0.1&port=53'), 'c1'), '/api/v2/events?addr=10.0.0.1&port=53&cursor=c1');
});

test('pivots are URLs the app routes: a new question of the view or of Investigate', () => {
  const conns = L.parseRoute('/network/connections', `?sensor_id=${S}&port=443&page=3&page_size=200&sort=pid`);
  assert.equal(L.pivotURL(conns, 'investigate', [{ key: 'addr', value: '10.2.0.1' }]), '/investigate?addr=10.2.0.1');
  assert.equal(L.pivotURL(conns, 'connections', [{ key: 'binary', value: 'curl' }]), '/network/connections?binary=curl&page_size=200');
  assert.equal(L.pivotURL(conns, 'udp', [{ key: 'port', value: '53' }]), '/network/listening?tab=udp&port=53');
  const inv = L.parseRoute('/investigate', '?window=6h&kind=dns_query&addr=10.0.0.1');
  assert.equal(L.pivotURL(inv, 'investigate', [{ key: 'dns', value: 'example.org' }]), '/investigate?dns=example.org&window=6h', 'the window is kept');
  const ids = { event_id: '7b711bb3-e704-4e09-9a6c-b22ce7dbc556', sensor_id: S };
  const connect = { ...ids, kind: 'network_connect', src_address: '10.1.0.1', src_port: 41000, dst_address: '93.184.216.34', dst_port: 443, answers: [] };
  const links = Object.fromEntries(L.eventLinks(connect, inv).map((l) => [l.rel, l.href]));
  assert.deepEqual(links, {
    flow: `/network/flows?sensor_id=${S}&addr=93.184.216.34&port=41000`,
    'flow-closed': `/investigate?sensor_id=${S}&addr=93.184.216.34&port=41000&kind=network_flow&window=6h`,
    connection: `/network/connections?sensor_id=${S}&addr=93.184.216.34&port=41000&time_wait=1`,
    dns: `/investigate?sensor_id=${S}&answer=93.184.216.34&window=6h`,
  });
  const flow = Object.fromEntries(L.eventLinks({ ...connect, kind: 'network_flow' }, inv).map((l) => [l.rel, l.href]));
  assert.equal(flow.flow, `/investigate?sensor_id=${S}&addr=93.184.216.34&port=41000&kind=network_flow&window=6h&event=${ids.event_id}`);
  const dns = L.eventLinks({ ...ids, kind: 'dns_resolution', src_port: 40005, dst_address: '10.0.0.53', answers: ['10.3.0.9'] }, inv);
  assert.deepEqual(dns.map((l) => l.href), [`/network/connections?sensor_id=${S}&addr=10.3.0.9&time_wait=1`,
    `/network/flows?sensor_id=${S}&addr=10.3.0.9`, `/investigate?sensor_id=${S}&addr=10.3.0.9&kind=network_connect&window=6h`]);
  assert.deepEqual(L.eventLinks({ ...ids, kind: 'network_listen', src_address: '0.0.0.0', src_port: 22, dst_address: '::', dst_port: 0 }, inv), []);
  // every pivot reads back as the state it names
  for (const l of [...Object.values(links), ...dns.map((x) => x.href)]) {
    const [p, q] = l.split('?');
    assert.equal(L.routeURL(L.parseRoute(p, q)), l);
  }
});

// A small graph answer as GET /api/v1/network/graph gives it: client-a's
// curl talks to b's nginx (observed, with its service), to an external
// name, and to an address two sensors hold; c's java runs in a container.
const A = 'a1000000-0000-4000-8000-000000000001', B = 'b1000000-0000-4000-8000-000000000002', C = 'c1000000-0000-4000-8000-000000000003';
const GRAPH = {
  nodes: [
    { id: 'host:' + A, kind: 'host', sensor_id: A, hostname: 'client-a', site: '' },
    { id: `process:${A}/1/100/curl`, kind: 'process', parent: 'host:' + A, sensor_id: A, pid: 100, binary: 'curl' },
    { id: 'host:' + B, kind: 'host', sensor_id: B, hostname: 'server-b', site: '' },
    { id: `process:${B}/1/200/nginx`, kind: 'process', parent: 'host:' + B, sensor_id: B, pid: 200, binary: 'nginx' },
    { id: `service:${B}/1/tcp/443`, kind: 'service', parent: `process:${B}/1/200/nginx`, sensor_id: B, protocol: 'tcp', port: 443 },
    { id: 'host:' + C, kind: 'host', sensor_id: C, hostname: 'app-c', site: '' },
    { id: `container:${C}/abc`, kind: 'container', parent: 'host:' + C, sensor_id: C, container_id: 'abc', name: 'shop', pod: '', pod_namespace: '' },
    { id: `process:${C}/2/300/java`, kind: 'process', parent: `container:${C}/abc`, sensor_id: C, pid: 300, binary: 'java' },
    { id: `process:${C}/1/301/cron`, kind: 'process', parent: 'host:' + C, sensor_id: C, pid: 301, binary: 'cron' },
    { id: 'external:api.example.com', kind: 'external', name: 'api.example.com', address: null },
    { id: 'ambiguous:/10.9.0.5', kind: 'ambiguous', site: '', address: '10.9.0.5', candidates: ['host:' + B, 'host:' + C] },
  ],
  edges: [
    { id: 'e1', source: `process:${A}/1/100/curl`, target: `process:${B}/1/200/nginx`, service: `service:${B}/1/tcp/443`, protocol: 'tcp', port: 443,
      resolution: 'observed', peer_addresses: ['10.0.0.2'], connections: 3, active: 1, bytes_client_to_server: 100, bytes_server_to_client: 900,
      first_seen: '2026-12-07T10:00:00.000Z', last_seen: '2026-12-07T10:05:00.000Z', end_states: { established: 2, refused: 0, 'half-closed': 0, stale: 0 } },
    { id: 'e2', source: `process:${A}/1/100/curl`, target: 'external:api.example.com', service: '', protocol: 'tcp', port: 8443,
      resolution: 'external', peer_addresses: ['203.0.113.10'], connections: 1, active: 0, bytes_client_to_server: 5, bytes_server_to_client: 6,
      first_seen: '2026-12-07T10:01:00.000Z', last_seen: '2026-12-07T10:02:00.000Z', end_states: { established: 1, refused: 0, 'half-closed': 0, stale: 0 } },
    { id: 'e3', source: `process:${A}/1/100/curl`, target: 'ambiguous:/10.9.0.5', service: '', protocol: 'tcp', port: 8080,
      resolution: 'ambiguous', peer_addresses: ['10.9.0.5'], connections: 1, active: 0, bytes_client_to_server: 1, bytes_server_to_client: 2,
      first_seen: '2026-12-07T09:59:00.000Z', last_seen: '2026-12-07T10:00:00.000Z', end_states: { established: 0, refused: 1, 'half-closed': 0, stale: 0 } },
    // two edges of c's processes to b's nginx: one per process, one edge per host
    { id: 'e4', source: `process:${C}/2/300/java`, target: `process:${B}/1/200/nginx`, service: `service:${B}/1/tcp/443`, protocol: 'tcp', port: 443,
      resolution: 'observed', peer_addresses: ['10.0.0.2'], connections: 2, active: 2, bytes_client_to_server: 10, bytes_server_to_client: 20,
      first_seen: '2026-12-07T10:03:00.000Z', last_seen: '2026-12-07T10:04:00.000Z', end_states: { established: 0, refused: 0, 'half-closed': 0, stale: 0 } },
    { id: 'e5', source: `process:${C}/1/301/cron`, target: `process:${B}/1/200/nginx`, service: `service:${B}/1/tcp/443`, protocol: 'tcp', port: 443,
      resolution: 'observed', peer_addresses: ['10.0.0.3'], connections: 4, active: 0, bytes_client_to_server: 1, bytes_server_to_client: 1,
      first_seen: '2026-12-07T09:00:00.000Z', last_seen: '2026-12-07T11:00:00.000Z', end_states: { established: 3, refused: 0, 'half-closed': 1, stale: 0 } },
  ],
};

test('the map route keeps its grouping, window and search in the URL', () => {
  const s = L.parseRoute('/network/map', `?sensor_id=${S}&group=service&window=6h&port=443&dns=a.org&pod=mesh/envoy`);
  assert.deepEqual(s, { view: 'map', sensor_id: S, at: '', span: '1h', group: 'service', since: '', until: '', window: '6h', container: '', pod: 'mesh/envoy',
    terms: [{ key: 'port', value: '443' }, { key: 'dns', value: 'a.org' }] });
  assert.equal(L.routeURL(s), `/network/map?sensor_id=${S}&port=443&dns=a.org&pod=mesh%2Fenvoy&group=service&window=6h`);
  // defaults are left out; what is invalid falls back to them
  assert.equal(L.routeURL(L.parseRoute('/network/map', '?group=rack&window=30d')), '/network/map');
  assert.equal(L.routeURL(L.parseRoute('/network/map', '?group=container')), '/network/map?group=container');
  const custom = L.parseRoute('/network/map', '?since=2026-12-07T10:00:00Z&until=2026-12-07T11:00:00Z');
  assert.equal(custom.window, 'custom');
  // the API is asked with the window, and without what it cannot take (dns: is said)
  const p = new URL(L.apiPath(custom), 'http://x');
  assert.equal(p.pathname, '/api/v1/network/graph');
  assert.equal(p.searchParams.get('since'), '2026-12-07T10:00:00.000Z');
  assert.equal(p.searchParams.get('until'), '2026-12-07T11:00:00.000Z');
  const q = new URL(L.apiPath(s, Date.parse('2026-12-07T12:00:00Z')), 'http://x').searchParams;
  assert.equal(q.get('port'), '443');
  assert.equal(q.get('dns'), null);
  assert.equal(q.get('pod'), 'mesh/envoy');
  assert.equal(q.get('since'), '2026-12-07T06:00:00.000Z');
  assert.deepEqual(L.unapplied(s).map((u) => u.term), ['dns:a.org']);
});

test('graphModel groups the graph by host, container or service and sums the edges', () => {
  const byHost = L.graphModel(GRAPH, 'host');
  assert.deepEqual(byHost.nodes.map((n) => n.id), ['ambiguous:/10.9.0.5', 'external:api.example.com', 'host:' + A, 'host:' + B, 'host:' + C]);
  assert.equal(byHost.edges.length, 4);
  const cb = byHost.edges.find((e) => e.source === 'host:' + C);
  assert.equal(cb.target, 'host:' + B);
  assert.deepEqual([cb.connections, cb.active, cb.bytes_client_to_server, cb.bytes_server_to_client], [6, 2, 11, 21]);
  assert.deepEqual([cb.first_seen, cb.last_seen], ['2026-12-07T09:00:00.000Z', '2026-12-07T11:00:00.000Z']);
  assert.deepEqual(cb.end_states, { established: 3, refused: 0, 'half-closed': 1, stale: 0 });
  assert.deepEqual(cb.parts, ['e4', 'e5']);
  assert.deepEqual(cb.peer_addresses, ['10.0.0.2', '10.0.0.3']);
  assert.deepEqual(cb.clients.map((n) => n.binary), ['java', 'cron']);
  // external peers by their DNS name; ambiguous addresses with their candidates
  const ext = byHost.nodes.find((n) => n.kind === 'external');
  assert.deepEqual([ext.label, ext.sub], ['api.example.com', 'external']);
  const amb = byHost.nodes.find((n) => n.kind === 'ambiguous');
  assert.deepEqual([amb.label, amb.sub, amb.candidates], ['10.9.0.5', 'ambiguous', ['server-b', 'app-c']]);

  // containers: the java in its container, cron stays with its host
  const byCtr = L.graphModel(GRAPH, 'container');
  assert.deepEqual(byCtr.edges.filter((e) => e.target === 'host:' + B).map((e) => e.source).sort(), ['container:' + C + '/abc', 'host:' + A, 'host:' + C]);
  assert.equal(byCtr.nodes.find((n) => n.kind === 'container').label, 'shop');

  // services: a server is its port, a client its process
  const bySvc = L.graphModel(GRAPH, 'service');
  const svc = bySvc.nodes.find((n) => n.kind === 'service');
  assert.deepEqual([svc.label, svc.sub], ['nginx tcp/443', 'server-b']);
  assert.equal(bySvc.edges.filter((e) => e.target === svc.id).length, 3);
  assert.equal(bySvc.nodes.find((n) => n.id === `process:${A}/1/100/curl`).label, 'curl (100)');
  // nothing lost: every grouping carries every connection
  for (const m of [byHost, byCtr, bySvc]) assert.equal(m.edges.reduce((a, e) => a + e.connections, 0), 11);
  // one answer, one model
  assert.deepEqual(L.graphModel(structuredClone(GRAPH), 'host'), byHost);
});

test('layout is deterministic: own nodes on a ring, peers outside it near who they talk to', () => {
  const m = L.graphModel(GRAPH, 'service');
  const a = L.layout(m), b = L.layout(L.graphModel(GRAPH, 'service'));
  assert.deepEqual([...a.entries()], [...b.entries()]);
  const r = (id) => Math.hypot(a.get(id).x, a.get(id).y);
  const inner = m.nodes.filter((n) => n.kind !== 'external' && n.kind !== 'ambiguous');
  const r1 = r(inner[0].id);
  for (const n of inner) assert.ok(Math.abs(r(n.id) - r1) < 1e-9, 'own nodes share one ring');
  assert.ok(r('external:api.example.com') > r1 + 100 && r('ambiguous:/10.9.0.5') > r1 + 100, 'peers outside it');
  // no two nodes on one spot, even with hundreds of them
  const big = { nodes: [], edges: [] };
  for (let i = 0; i < 300; i++) {
    big.nodes.push({ id: 'host:h' + i, kind: 'host', sensor_id: 'h' + i, hostname: 'h' + i });
    big.nodes.push({ id: 'external:x' + i, kind: 'external', name: '', address: '192.0.2.' + i });
    big.edges.push({ id: 'b' + i, source: 'host:h' + i, target: 'external:x' + (i % 50), protocol: 'tcp', port: 443, connections: 1 });
  }
  const bm = L.graphModel(big, 'host'), bp = L.layout(bm);
  assert.equal(bm.nodes.length, 350);
  const spots = new Set([...bp.values()].map((p) => p.x.toFixed(1) + ',' + p.y.toFixed(1)));
  assert.equal(spots.size, 350);
  const box = L.fitBox(bp);
  for (const p of bp.values()) assert.ok(p.x > box.x && p.x < box.x + box.w && p.y > box.y && p.y < box.y + box.h);
});

test('zoom keeps the point under the pointer and stays within bounds; pan moves the box', () => {
  const fit = { x: -100, y: -50, w: 200, h: 100 };
  const z = L.zoomBox(fit, 2, 50, 0, fit);
  assert.deepEqual(z, { x: -25, y: -25, w: 100, h: 50 });
  // the focus point is at the same fraction of the box before and after
  assert.equal((50 - fit.x) / fit.w, (50 - z.x) / z.w);
  assert.equal(L.zoomBox(fit, 1000, 0, 0, fit).w, fit.w / 40);
  assert.equal(L.zoomBox(fit, 0.001, 0, 0, fit).w, fit.w * 4);
  assert.deepEqual(L.zoomBox(L.zoomBox(fit, 1.25, 10, 10, fit), 0.8, 10, 10, fit), fit);
  assert.deepEqual(L.panBox(fit, 10, -5), { x: -110, y: -45, w: 200, h: 100 });
});

test('an edge links to its flows: the client\'s sensor and binary, the server\'s addresses and port, the map\'s window', () => {
  const s = L.parseRoute('/network/map', '?window=6h&port=443');
  const m = L.graphModel(GRAPH, 'host');
  const links = L.edgeLinks(m.edges.find((e) => e.source === 'host:' + C), s);
  assert.deepEqual(links.map((l) => l.rel), ['closed', 'active']);
  const closed = new URL(links[0].href, 'http://x');
  assert.equal(closed.pathname, '/investigate');
  const inv = L.parseRoute(closed.pathname, closed.search);
  assert.deepEqual([inv.sensor_id, inv.kinds, inv.window], [C, ['network_flow'], '6h']);
  assert.deepEqual(inv.terms, [{ key: 'addr', value: '10.0.0.2' }, { key: 'addr', value: '10.0.0.3' }, { key: 'port', value: '443' },
    { key: 'binary', value: 'java' }, { key: 'binary', value: 'cron' }]);
  const active = L.parseRoute(new URL(links[1].href, 'http://x').pathname, new URL(links[1].href, 'http://x').search);
  assert.deepEqual([active.view, active.sensor_id, active.terms], ['flows', C, inv.terms]);
  // an edge from nobody's end is asked of the server's sensor
  const inbound = L.edgeLinks({ clients: [{ id: 'external:1.2.3.4', kind: 'external' }], servers: [GRAPH.nodes[3]], peer_addresses: ['10.0.0.2'], ports: [443] }, s);
  assert.equal(L.parseRoute('/investigate', new URL(inbound[0].href, 'http://x').search).sensor_id, B);
});

test('the Summary keeps the newest findings of each sensor and says what is new', () => {
  const f = (sensor, kind, t, extra = {}) => ({ event_id: S, sensor_id: sensor, kind, time: t, binary: 'curl', protocol: 'tcp',
    src_address: '10.0.0.1', src_port: 41000, dst_address: '10.0.0.2', dst_port: 80, query_name: '', ...extra });
  const events = [f(A, 'baseline_new_peer', '5'), f(B, 'baseline_new_listener', '4', { src_port: 8080 }), f(A, 'baseline_new_destination', '3'),
    f(A, 'baseline_new_domain', '2', { query_name: 'evil.example' }), f(A, 'baseline_new_peer', '1')];
  const groups = L.newestFindings(events, 3);
  assert.deepEqual(groups.map((g) => g.map((e) => e.time)), [['5', '3', '2'], ['4']]);
  assert.deepEqual(events.map(L.findingText), ['curl: 10.0.0.1 ↔ 10.0.0.2', 'curl listens on tcp 8080', 'curl → 10.0.0.2:80',
    'curl looked up evil.example', 'curl: 10.0.0.1 ↔ 10.0.0.2']);
  assert.equal(L.findingText(f(A, 'baseline_new_destination', '0', { query_name: 'api.example.com', dst_port: 443 })), 'curl → api.example.com:443');
  const u = new URL(L.findingURL(events[0]), 'http://x');
  assert.deepEqual(L.parseRoute(u.pathname, u.search), { view: 'investigate', sensor_id: A, kinds: ['baseline_new_peer'], since: '', until: '',
    window: '7d', event: S, container: '', pod: '', terms: [] });
  const p = new URL(L.findingsPath(Date.parse('2026-12-07T12:00:00Z')), 'http://x').searchParams;
  assert.deepEqual(p.get('kind').split(','), ['baseline_new_listener', 'baseline_new_destination', 'baseline_new_domain', 'baseline_new_peer',
    'baseline_connection_count']);
  assert.equal(L.findingText(f(A, 'baseline_connection_count', '0', { state: 'above', query_name: '100 connections; usual at 03:00 UTC over 4 days: 11 ± 0.8; 89 deviations' })),
    'connections above: 100 connections; usual at 03:00 UTC over 4 days: 11 ± 0.8; 89 deviations');
  assert.deepEqual([p.get('since'), p.get('until')], ['2026-11-30T12:00:00.000Z', '2026-12-07T12:00:00.000Z']);
});

// ---- the time control ----

const AT = '2026-12-07T10:30:00Z';

test('at= lives in the URL of every snapshot view: RFC 3339 or Unix ms, normalised, round trip exact', () => {
  // an offset and milliseconds since the epoch are read as the API reads them, written in UTC
  assert.equal(L.parseRoute('/network/connections', '?at=2026-12-07T11:30:00%2B01:00').at, AT);
  assert.equal(L.parseRoute('/network/connections', '?at=' + Date.parse(AT)).at, AT);
  assert.equal(L.parseRoute('/network/flows', '?at=2026-12-07T10:30:00.250Z').at, '2026-12-07T10:30:00.250Z');
  // what is not a moment is now
  for (const bad of ['yesterday', '2026-12-07', '2026-12-07T10:30:00', '12abc', '']) {
    assert.equal(L.parseRoute('/network/connections', '?at=' + encodeURIComponent(bad)).at, '', bad);
  }
  assert.equal(L.parseRoute('/network/summary', '?span=6h').span, '6h');
  assert.equal(L.parseRoute('/network/summary', '?span=3y').span, '1h');
  const urls = [
    '/network/summary?at=2026-12-07T10%3A30%3A00Z',
    '/network/summary?span=7d',
    `/network/connections?sensor_id=${S}&page=2&sort=-pid&at=2026-12-07T10%3A30%3A00Z&span=24h`,
    '/network/listening?tab=udp&at=2026-12-07T10%3A30%3A00Z',
    '/network/flows?at=2026-12-07T10%3A30%3A00.250Z',
    '/network/map?group=container&window=6h&at=2026-12-07T10%3A30%3A00Z&span=6h',
  ];
  for (const u of urls) {
    const [p, q = ''] = u.split('?');
    assert.equal(L.routeURL(L.parseRoute(p, q)), u);
  }
  // Investigate keeps its own window: at= is no state of it
  const inv = L.parseRoute('/investigate', '?at=' + AT + '&span=6h');
  assert.equal(inv.at, undefined);
  assert.equal(L.routeURL(inv), '/investigate');
  assert.equal(L.routeURL({ ...inv, at: AT }), '/investigate');
});

test('at= goes on every snapshot request, export and the Summary; Investigate is asked of its window', () => {
  const q = (path) => new URL(path, 'http://x').searchParams;
  for (const [p, list] of [['/network/connections', 'connections'], ['/network/listening', 'listening'], ['/network/listening?tab=udp', 'udp'], ['/network/flows', 'flows']]) {
    const [path, search = ''] = p.split('?');
    const s = L.parseRoute(path, (search ? search + '&' : '') + 'at=' + AT + '&page_size=1000');
    const pages = L.listPaths(s);
    assert.equal(pages.length, 2);
    for (const x of pages) {
      assert.equal(new URL(x, 'http://x').pathname, '/api/v1/network/' + list);
      assert.equal(q(x).get('at'), AT, x);
    }
    assert.equal(q(L.exportPath(s, 'csv')).get('at'), AT);
    assert.equal(new URL(L.exportPath(s, 'csv'), 'http://x').pathname, '/api/v2/network/' + list + '/export');
    // now: no at= at all
    const live = L.parseRoute(path, search);
    assert.equal(q(L.listPaths(live)[0]).has('at'), false);
    assert.equal(q(L.exportPath(live, 'ndjson')).has('at'), false);
  }
  const conns = L.parseRoute('/network/connections', '?at=' + AT);
  assert.equal(L.apiPath(conns), '/api/v1/network/connections?state=%21TIME_WAIT&at=2026-12-07T10%3A30%3A00Z&page=1&page_size=100');
  assert.equal(q(L.timeWaitPath(conns)).get('at'), AT, 'the hidden TIME_WAIT are counted at the moment too');
  assert.equal(L.apiPath(L.parseRoute('/network/summary', '?at=' + AT)), '/api/v1/network/summary?at=2026-12-07T10%3A30%3A00Z');
  assert.equal(L.apiPath(L.parseRoute('/network/summary', '')), '/api/v1/network/summary');
  // the Summary's findings are those of the week before the moment
  const f = q(L.findingsPath(Date.parse('2026-12-08T00:00:00Z'), AT));
  assert.equal(f.get('until'), '2026-12-07T10:30:00.000Z');
  assert.equal(f.get('since'), '2026-11-30T10:30:00.000Z');
  assert.equal(q(L.findingsPath(Date.parse('2026-12-08T00:00:00Z'))).get('until'), '2026-12-08T00:00:00.000Z');
  // the Map: at= and a preset window that ends at the moment; a custom window stays as given
  const map = q(L.apiPath(L.parseRoute('/network/map', '?window=6h&at=' + AT), Date.parse('2026-12-08T00:00:00Z')));
  assert.equal(map.get('at'), AT);
  assert.equal(map.get('until'), '2026-12-07T10:30:00.000Z');
  assert.equal(map.get('since'), '2026-12-07T04:30:00.000Z');
  const custom = q(L.apiPath(L.parseRoute('/network/map', '?since=2026-12-07T08:00:00Z&until=2026-12-07T09:00:00Z&at=' + AT)));
  assert.equal(custom.get('until'), '2026-12-07T09:00:00.000Z');
  // one that ends after the moment is moved back to end at it, its length kept
  const late = q(L.apiPath(L.parseRoute('/network/map', '?since=2026-12-07T10:00:00Z&until=2026-12-07T12:00:00Z&at=' + AT)));
  assert.deepEqual([late.get('since'), late.get('until')], ['2026-12-07T08:30:00.000Z', '2026-12-07T10:30:00.000Z']);
  // Investigate never sends at=, even from a state that has one
  assert.equal(q(L.apiPath({ ...L.parseRoute('/investigate', ''), at: AT })).has('at'), false);
});

test('pivots keep the moment; into Investigate they are centred on it', () => {
  const conns = L.parseRoute('/network/connections', '?at=' + AT + '&span=6h');
  // to another snapshot view: the same moment and span
  assert.equal(L.pivotURL(conns, 'flows', [{ key: 'port', value: '443' }]), '/network/flows?port=443&at=2026-12-07T10%3A30%3A00Z&span=6h');
  // to Investigate: the default window's length, the moment in its middle
  const inv = L.parseRoute('/investigate', new URL(L.pivotURL(conns, 'investigate', [{ key: 'addr', value: '10.0.0.1' }]), 'http://x').search);
  assert.equal(inv.window, 'custom');
  assert.equal(inv.since, '2026-12-07T10:00:00.000Z');
  assert.equal(inv.until, '2026-12-07T11:00:00.000Z');
  // from now, Investigate's default window as before
  assert.equal(L.pivotURL(L.parseRoute('/network/connections', ''), 'investigate', [{ key: 'addr', value: '10.0.0.1' }]), '/investigate?addr=10.0.0.1');
  // from the Map at a moment: the map's window, which ends at the moment
  const map = L.parseRoute('/network/map', '?window=6h&at=' + AT);
  const fromMap = L.parseRoute('/investigate', new URL(L.pivotURL(map, 'investigate', []), 'http://x').search);
  assert.deepEqual([fromMap.since, fromMap.until], ['2026-12-07T04:30:00.000Z', '2026-12-07T10:30:00.000Z']);
  // Investigate back to a list: now (its window is no moment)
  assert.equal(L.pivotURL(fromMap, 'connections', []), '/network/connections');
  // a finding of the Summary at a moment: the week before it
  const e = { sensor_id: S, kind: 'baseline_new_listener', event_id: S };
  const fu = L.parseRoute('/investigate', new URL(L.findingURL(e, AT), 'http://x').search);
  assert.deepEqual([fu.window, fu.until], ['custom', '2026-12-07T10:30:00.000Z']);
  assert.equal(L.parseRoute('/investigate', new URL(L.findingURL(e), 'http://x').search).window, '7d');
});

test('the timeline: aligned windows, bar geometry, the bar of a moment, keys', () => {
  const now = Date.parse('2026-12-07T11:41:12Z');
  // 120 bars of a whole step, ending at the first step after now
  assert.equal(L.timelinePath('1h', '', now), '/api/v2/network/timeline?since=2026-12-07T10%3A41%3A30Z&until=2026-12-07T11%3A41%3A30Z&step=30s');
  assert.equal(L.timelinePath('7d', S, now),
    `/api/v2/network/timeline?sensor_id=${S}&since=2026-11-30T11%3A48%3A00Z&until=2026-12-07T11%3A48%3A00Z&step=5040s`);
  for (const span of Object.keys(L.SPANS)) {
    const w = L.timelineWindow(span, now);
    assert.equal((w.until - w.since) / w.step, 120, span);
    assert.ok(w.until >= now && w.until - now < w.step);
  }
  // four buckets of 30 s, 0..40 connections, in a box of 400 x 20
  const d = { since: '2026-12-07T11:40:00Z', until: '2026-12-07T11:42:00Z', step_secs: 30, buckets: [
    { time: '2026-12-07T11:40:00.000Z', sensors: 2, connections: 20 }, { time: '2026-12-07T11:40:30.000Z', sensors: 2, connections: 40 },
    { time: '2026-12-07T11:41:00.000Z', sensors: 1, connections: 0 }, { time: '2026-12-07T11:41:30.000Z', sensors: 3, connections: 1 }] };
  const later = Date.parse('2026-12-07T11:41:50Z'); // within the last bucket
  const bars = L.timelineBars(d, 400, 20, later);
  assert.deepEqual(bars.map((b) => [b.x, b.w, b.y, b.h]), [[0, 99, 10, 10], [100, 99, 0, 20], [200, 99, 20, 0], [300, 99, 19, 1]],
    'left to right, linear, the tallest fills the box, a bar with any connection gets a pixel');
  // a bar's moment is its bucket's end, the last one's no later than now
  assert.deepEqual(bars.map((b) => L.atText(b.moment)), ['2026-12-07T11:40:30Z', '2026-12-07T11:41:00Z', '2026-12-07T11:41:30Z', '2026-12-07T11:41:50Z']);
  assert.deepEqual(L.timelineBars({ buckets: [] }, 400, 40), []);
  assert.deepEqual(L.timelineBars({ step_secs: 30, buckets: [{ time: d.since, sensors: 0, connections: 0 }] }, 400, 40, later).map((b) => b.h), [0]);
  // a click: the bar under the pointer, bounded
  assert.deepEqual([L.barAt(0, 400, 4), L.barAt(99.9, 400, 4), L.barAt(100, 400, 4), L.barAt(399.9, 400, 4), L.barAt(-5, 400, 4), L.barAt(500, 400, 4)], [0, 0, 1, 3, 0, 3]);
  assert.equal(L.barAt(10, 400, 0), -1);
  // the bar that shows a moment: the one whose bucket holds it, its end included
  assert.equal(L.barOf(bars, '2026-12-07T11:40:30Z'), 0);
  assert.equal(L.barOf(bars, '2026-12-07T11:40:30.001Z'), 1);
  assert.equal(L.barOf(bars, '2026-12-07T11:41:10Z'), 2);
  assert.equal(L.barOf(bars, '2026-12-07T11:41:45Z'), 3);
  assert.equal(L.barOf(bars, '2026-12-07T11:39:00Z'), -1);
  // a picked bar's moment is its own bar's
  for (const b of bars) assert.equal(L.barOf(bars, L.atText(b.moment)), b.i);
  const w = { since: Date.parse(d.since), until: Date.parse(d.until) };
  assert.equal(L.momentX('2026-12-07T11:41:00Z', w, 400), 200);
  assert.equal(L.momentX('2026-12-07T11:43:00Z', w, 400), null);
  // keys: one bar, ten, the ends, bounded; other keys do nothing
  assert.deepEqual(['ArrowLeft', 'ArrowRight', 'PageUp', 'PageDown', 'Home', 'End', 'a'].map((k) => L.moveBar(k, 5, 120)), [4, 6, 0, 15, 0, 119, -1]);
  assert.deepEqual([L.moveBar('ArrowLeft', 0, 120), L.moveBar('ArrowRight', 119, 120)], [0, 119]);
  // the span that shows a moment: the current one if it does, else the shortest
  assert.equal(L.spanFor('2026-12-07T11:00:00Z', now), '1h');
  assert.equal(L.spanFor('2026-12-07T11:00:00Z', now, '24h'), '24h');
  assert.equal(L.spanFor('2026-12-07T05:00:00Z', now, '1h'), '24h');
  assert.equal(L.spanFor('2026-11-01T00:00:00Z', now), '7d');
});
