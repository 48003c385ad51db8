// Browser checks of the Console, run by console/browser_test.go against a
// real query service: Chromium from Debian, driven by playwright-core.
// Each check waits for what a user would see, then asserts it exactly.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const { chromium } = await import(join(process.env.NETVIEW_NODE_MODULES, 'playwright-core', 'index.mjs'));
const BASE = process.env.BASE_URL;
const TOKEN = process.env.TOKEN;
const F = JSON.parse(readFileSync(process.env.FLEET, 'utf8'));
const SHOTS = process.env.ARTIFACTS;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
// A laptop screen, in a zone far from UTC so the zone shift is visible.
const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, timezoneId: 'Asia/Kolkata' });
const page = await ctx.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.setDefaultTimeout(20000);

let failures = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
    await page.screenshot({ path: join(SHOTS, 'failed-' + name.replace(/\W+/g, '-') + '.png'), fullPage: true }).catch(() => {});
  }
}
const shot = (name) => page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: false });
const texts = (sel) => page.locator(sel).allInnerTexts();
const column = async (label) => {
  const heads = await texts('#content table thead th');
  const i = heads.findIndex((h) => h.replace(/[▲▼]/g, '').trim() === label);
  assert.ok(i >= 0, `no column ${label} in ${heads}`);
  return texts(`#content table tbody tr td:nth-child(${i + 1})`);
};
// hostColumn is the Host column without its stale marks: on a slow run the
// fleet's 5-second sensors pass three intervals without a heartbeat and
// their cells gain "stale", which checks about the host do not ask about.
const hostColumn = async () => (await column('Host')).map((h) => h.replace(/\s*stale$/, ''));
// settle waits until the view shows the answer to the current URL.
const settle = async () => {
  await page.waitForFunction(() => !document.querySelector('#content[aria-busy]') && /updated/.test(document.getElementById('status').textContent));
};
const url = () => new URL(page.url());
const statusText = () => page.locator('#status').innerText();

await check('no data without a token, and a bad token is refused', async () => {
  const apiCalls = [];
  page.on('request', (r) => { if (r.url().includes('/api/')) apiCalls.push(r.url()); });
  await page.goto(BASE + '/network/connections');
  await page.locator('#signin-form').waitFor();
  assert.equal(await page.locator('#app').isHidden(), true);
  assert.equal(apiCalls.length, 0, 'no API call before sign-in');
  await page.fill('#token', 'wrong-token');
  await page.click('#signin-form button[type=submit]');
  await page.locator('#signin-error').waitFor();
  assert.match(await page.locator('#signin-error').innerText(), /refused/);
  assert.equal(await page.locator('#content tbody tr').count(), 0);
  await shot('01-signin-refused');
  page.removeAllListeners('request');
});

await check('sign in lands on the bookmarked view', async () => {
  await page.fill('#token', TOKEN);
  await page.click('#signin-form button[type=submit]');
  await settle();
  assert.equal(url().pathname, '/network/connections');
  assert.match(await statusText(), new RegExp(`^${F.Connections} connections across the fleet · page 1 of ${Math.ceil(F.Connections / 100)}`));
  assert.equal(await page.locator('#content tbody tr').count(), 100);
});

await check('summary: one mark per sensor, sorted by anomaly, stale shown', async () => {
  await page.click('#nav a[data-view=summary]');
  await settle();
  assert.equal(url().pathname, '/network/summary');
  assert.equal(await page.locator('svg.chart a.mark').count(), 3);
  assert.equal(await page.locator('svg.chart a.mark.stale').count(), 1);
  assert.equal(await page.locator(`svg.chart a.mark.high[data-sensor="${F.Core.ID}"]`).count(), 1, 'core-b is the anomaly');
  const hosts = await column('Host');
  assert.equal(hosts[0], F.Core.Hostname, 'highest anomaly score first');
  assert.deepEqual([...hosts].sort(), [F.Core.Hostname, F.Edge.Hostname, F.Old.Hostname].sort());
  const status = await column('Status');
  assert.equal(status[hosts.indexOf(F.Old.Hostname)], 'stale');
  assert.equal(status[hosts.indexOf(F.Edge.Hostname)], 'reporting');
  const active = await column('Active connections');
  // the Summary counts every state, TIME_WAIT too
  assert.equal(active[hosts.indexOf(F.Edge.Hostname)], String(F.Edge.AllConnections));
  const clock = await column('Clock');
  assert.match(clock[hosts.indexOf(F.Core.Hostname)], /^(4m 5\ds|5m 0\ds) ahead$/, 'core-b\'s clock runs five minutes ahead');
  assert.equal(await page.locator('#content tbody .skew.high').count(), 1, 'only core-b\'s clock is off');
  const ns = await column('Namespaces'), cs = await column('Containers');
  for (const sensor of [F.Edge, F.Core, F.Old]) {
    const i = hosts.indexOf(sensor.Hostname);
    assert.equal(ns[i], String(sensor.Namespaces), `${sensor.Hostname}'s network namespaces`);
    assert.equal(cs[i], String(sensor.Containers), `${sensor.Hostname}'s containers`);
  }
  assert.ok(F.Edge.Containers > 0 && F.Edge.Namespaces > F.Edge.Containers, 'the fixture has containers and the host namespace');
  await shot('02-summary');
});

await check('summary: capabilities per sensor, lsm unavailable shown as such', async () => {
  const hosts = await column('Host');
  const caps = await column('Capabilities');
  const edge = caps[hosts.indexOf(F.Edge.Hostname)];
  for (const tag of ['flow_source ebpf+inet_diag', 'ebpf active', 'dns active', 'lsm unavailable', 'sctp available']) {
    assert.ok(edge.includes(tag), `edge-a shows "${tag}" (got ${edge})`);
  }
  assert.ok(!/lost/.test(edge), 'no lost events to report');
  const row = page.locator('#content tbody tr').nth(hosts.indexOf(F.Edge.Hostname));
  assert.equal(await row.locator('.cap[data-cap=lsm]').getAttribute('title'), 'lsm: ' + F.EdgeCaps.lsm, 'the reason on hover');
  assert.equal(await row.locator('.cap.off[data-cap=lsm]').count(), 1, 'unavailable is shown as off');
  assert.equal(caps[hosts.indexOf(F.Core.Hostname)], 'not reported', 'a sensor without capabilities says so');
  await row.click();
  await page.locator('#detail').waitFor();
  const dts = await texts('#detail dt');
  const dds = await texts('#detail dd');
  for (const [k, v] of Object.entries(F.EdgeCaps)) {
    assert.equal(dds[dts.indexOf('capabilities.' + k)], v, `detail shows capabilities.${k}`);
  }
  await page.keyboard.press('Escape');
});

await check('a summary row links to that sensor\'s connections', async () => {
  await page.click(`#content tbody a[href$="${F.Core.ID}"]`);
  await settle();
  assert.equal(url().pathname, '/network/connections');
  assert.equal(url().searchParams.get('sensor_id'), F.Core.ID);
  const hosts = await hostColumn();
  assert.equal(hosts.length, F.Core.Connections);
  assert.ok(hosts.every((h) => h === F.Core.Hostname), 'every row is core-b');
  assert.match(await statusText(), new RegExp(`^${F.Core.Connections} connections on ${F.Core.Hostname}`));
  assert.equal(await page.inputValue('#sensor'), `${F.Core.Hostname} · ${F.Core.ID.slice(0, 8)}`);
});

await check('the sensor filter scopes connections', async () => {
  await page.goto(BASE + '/network/connections');
  await settle();
  await page.fill('#sensor', `${F.Old.Hostname} · ${F.Old.ID.slice(0, 8)}`);
  await page.press('#sensor', 'Enter');
  await page.waitForURL((u) => u.searchParams.get('sensor_id') === F.Old.ID);
  await settle();
  const hosts = await column('Host');
  assert.equal(hosts.length, F.Old.Connections);
  assert.ok(hosts.every((h) => h.startsWith(F.Old.Hostname) && h.includes('stale')), 'old-c rows are marked stale');
  await page.click('text=All sensors');
  await page.waitForURL((u) => !u.searchParams.has('sensor_id'));
  await settle();
  assert.match(await statusText(), new RegExp(`^${F.Connections} connections across the fleet`));
});

await check('connections: paging moves, with total and page count', async () => {
  await page.selectOption('#page-size', '50');
  await settle();
  assert.equal(url().searchParams.get('page_size'), '50');
  const pages = Math.ceil(F.Connections / 50);
  assert.equal(await page.locator('#pageinfo').innerText(), `Page 1 of ${pages}`);
  const keys1 = await page.locator('#content tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.key));
  assert.equal(keys1.length, 50);
  assert.equal(await page.locator('#prev').isDisabled(), true);
  await page.click('#next');
  await settle();
  assert.equal(url().searchParams.get('page'), '2');
  const keys2 = await page.locator('#content tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.key));
  assert.equal(keys2.length, 50);
  assert.equal(keys1.filter((k) => keys2.includes(k)).length, 0, 'pages do not overlap');
  await page.click('#last');
  await settle();
  assert.equal(url().searchParams.get('page'), String(pages));
  assert.equal(await page.locator('#content tbody tr').count(), F.Connections - 50 * (pages - 1));
  assert.equal(await page.locator('#next').isDisabled(), true);
  await page.goBack();
  await settle();
  assert.equal(url().searchParams.get('page'), '2', 'the back button returns to the previous page');
});

await check('connections: columns sort both ways, durations read "predates sensor"', async () => {
  await page.goto(BASE + '/network/connections?page_size=500');
  await settle();
  await page.click('th button[data-field=pid]');
  await settle();
  assert.equal(url().searchParams.get('sort'), 'pid');
  assert.equal(await page.locator('th[aria-sort=ascending] button[data-field=pid]').count(), 1);
  let pids = (await column('PID')).map(Number);
  assert.deepEqual(pids, [...pids].sort((a, b) => a - b));
  await page.click('th button[data-field=pid]');
  await settle();
  assert.equal(url().searchParams.get('sort'), '-pid');
  pids = (await column('PID')).map(Number);
  assert.deepEqual(pids, [...pids].sort((a, b) => b - a));
  assert.ok(pids[0] > pids[pids.length - 1]);
  await page.click('th button[data-field=duration_secs]');
  await settle();
  // one connection of each sensor predates it: their null durations sort first
  const dur = await column('Duration');
  assert.deepEqual(dur.slice(0, 4), ['predates sensor', 'predates sensor', 'predates sensor', '7s']);
  assert.equal(dur.filter((d) => d === 'predates sensor').length, 3);
  assert.ok((await column('Local')).slice(0, 3).includes(F.PredatesLocal));
  await page.click('th button[data-field=hostname]');
  await settle();
  await page.click('th button[data-field=hostname]');
  await settle();
  assert.equal(url().searchParams.get('sort'), '-hostname');
  const hosts = await hostColumn();
  assert.deepEqual(hosts.slice(0, F.Old.Connections), Array(F.Old.Connections).fill(F.Old.Hostname), 'old-c first, descending');
  assert.deepEqual(hosts, [...hosts].sort().reverse());
  const bins = await column('Binary');
  assert.ok(bins.every((b) => b.length > 0) && (await column('PID')).every((p) => /^\d+$/.test(p)), 'binary and PID shown');
  await shot('03-connections');
});

const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
let tableBuildMs = NaN; // building a 1000-row page's DOM: the reference of the map's render time

await check('500 and 1,000 rows on screen', async () => {
  // Time from a click on a pager button to the rows on screen (API calls
  // included), for pages of 100, 500 and 1,000 rows in the same run:
  // reported, not asserted (docs/performance.md). A 1,000-row page is two
  // API pages of 500 (the v1 lists' largest) with TIME_WAIT shown, so the
  // page is full.
  const timePage = async (size, query, button, want) => {
    await page.goto(BASE + '/network/connections?page_size=' + size + query);
    await settle();
    const ms = await page.evaluate(async (id) => {
      const t0 = performance.now();
      const before = document.getElementById('status').textContent;
      document.getElementById(id).click();
      await new Promise((r) => {
        const mo = new MutationObserver(() => {
          const st = document.getElementById('status').textContent;
          if (st !== before && /updated/.test(st)) { mo.disconnect(); r(); }
        });
        mo.observe(document.getElementById('status'), { childList: true, characterData: true, subtree: true });
      });
      await new Promise((r) => requestAnimationFrame(() => r()));
      return performance.now() - t0;
    }, button);
    assert.equal(await page.locator('#content tbody tr').count(), want);
    return [ms, Number(await page.getAttribute('#content', 'data-render-ms'))];
  };
  const t100 = [], t500 = [], t1000 = [], b1000 = [];
  const all = F.Connections + F.TimeWait;
  assert.ok(all >= 1000, 'the fleet fills a page of 1,000');
  for (let i = 0; i < 3; i++) {
    t100.push((await timePage(100, '', 'next', 100))[0]);
    t500.push((await timePage(500, '', 'next', Math.min(500, F.Connections - 500)))[0]);
    const [ms, build] = await timePage(1000, '&time_wait=1&page=2', 'prev', 1000);
    t1000.push(ms);
    b1000.push(build);
  }
  tableBuildMs = med(b1000);
  console.log(`     figure: pager click to rows painted, median of 3: 100 rows ${med(t100).toFixed(0)} ms, 500 rows ${med(t500).toFixed(0)} ms, ` +
    `1000 rows ${med(t1000).toFixed(0)} ms (building the 1000 rows' DOM: ${med(b1000).toFixed(0)} ms)`);
});

await check('times in the browser zone with UTC on hover', async () => {
  const t = page.locator('#content tbody tr:first-child time').first();
  const title = await t.getAttribute('title');
  const iso = await t.getAttribute('datetime');
  assert.match(title, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$/);
  const local = new Date(Date.parse(iso) + 5.5 * 3600e3).toISOString().slice(0, 19).replace('T', ' ');
  assert.equal(await t.innerText(), local, 'shown in Asia/Kolkata (UTC+5:30)');
});

await check('refresh keeps the selection and the scroll', async () => {
  await page.goto(BASE + `/network/connections?sensor_id=${F.Edge.ID}&page_size=200`);
  await settle();
  const row = page.locator('#content tbody tr').nth(120);
  await row.click();
  const key = await row.getAttribute('data-key');
  await page.locator('#detail').waitFor();
  await page.evaluate(() => window.scrollTo(0, 2400));
  const y = await page.evaluate(() => window.scrollY);
  const before = await statusText();
  // sensors report every 5 s: the view refreshes on that cadence
  await page.waitForFunction((s) => document.getElementById('status').textContent !== s, before, { timeout: 15000 });
  await settle();
  assert.equal(await page.evaluate(() => window.scrollY), y, 'scroll kept');
  assert.equal(await page.locator('#content tbody tr[aria-selected=true]').getAttribute('data-key'), key, 'selection kept');
  assert.equal(await page.locator('#detail').isVisible(), true);
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#detail').isHidden(), true);
});

await check('listening services: TCP fleet-wide, UDP tab with telecom services', async () => {
  await page.goto(BASE + '/network/listening');
  await settle();
  assert.equal(await page.locator('#tab-tcp').getAttribute('aria-selected'), 'true');
  assert.equal(await page.locator('#content tbody tr').count(), F.Listening);
  const ports = await column('Port');
  assert.ok(ports.includes('22') && ports.includes('8805'));
  const svc = await column('Service');
  assert.equal(svc[ports.indexOf('8805')], 'PFCP', 'TCP ports are named too');
  assert.ok((await column('Binary path')).every((p) => p.startsWith('/usr/bin/')));
  await shot('04-listening-tcp');
  await page.click('#tab-udp');
  await page.waitForURL((u) => u.searchParams.get('tab') === 'udp');
  await settle();
  assert.equal(await page.locator('#tab-udp').getAttribute('aria-selected'), 'true');
  assert.equal(await page.locator('#content tbody tr').count(), F.Edge.UDP);
  const udpSvc = await column('Service');
  for (const s of F.UDPServices) assert.ok(udpSvc.includes(s), `UDP service ${s} named (got ${udpSvc})`);
  assert.deepEqual((await column('Port')).filter((p, i) => udpSvc[i] === 'GTP-U'), ['2152']);
  await page.fill('#sensor', F.Edge.Hostname);
  await page.press('#sensor', 'Enter');
  await page.waitForURL((u) => u.searchParams.get('sensor_id') === F.Edge.ID && u.searchParams.get('tab') === 'udp');
  await settle();
  assert.equal(await page.locator('#content tbody tr').count(), F.Edge.UDP);
  await shot('05-listening-udp');
});

await check('flows: binary, endpoints, protocol, duration, bytes, state', async () => {
  await page.click('#nav a[data-view=flows]');
  await settle();
  assert.equal(await page.locator('#content tbody tr').count(), F.Flows);
  await page.click('th button[data-field=bytes_sent]');
  await settle();
  await page.click('th button[data-field=bytes_sent]');
  await settle();
  assert.equal(url().searchParams.get('sort'), '-bytes_sent');
  const sent = await column('Sent');
  assert.equal(sent[0], '2.0 MiB', 'largest flow first (1000 << 11 bytes)');
  assert.equal(sent[sent.length - 1], '1000 B');
  assert.ok((await column('Destination')).every((d) => d === '10.3.0.9:5432'));
  assert.ok((await column('State')).every((s) => s === 'ESTABLISHED'));
  assert.ok((await column('Protocol')).every((s) => s === 'tcp'));
  await shot('06-flows');
});

// The Container/Pod filter: what the select names, the text sent as
// container= or pod=, kept in the URL across paging and reloads.
const scopeBy = async (kind, text) => {
  await page.selectOption('#scope-kind', kind);
  await page.fill('#scope', text);
  await page.press('#scope', 'Enter');
  await page.waitForURL((u) => u.searchParams.get(kind) === text && !u.searchParams.has(kind === 'pod' ? 'container' : 'pod'));
  await settle();
};
const cells = (sel) => page.locator(`#content tbody ${sel}`).evaluateAll((es) => es.map((e) => [e.textContent, e.getAttribute('title'), e.dataset.kind]));
const W = F.Workloads;

await check('connections: the Container/Pod column names pods, containers and units', async () => {
  // every binary on one page: 1,000 rows hold the fleet's shown connections
  await page.goto(BASE + '/network/connections?page_size=1000&sort=binary');
  await settle();
  const bins = await column('Binary'), wl = await column('Container/Pod');
  assert.equal(wl.length, F.Connections);
  const of = (b) => [...new Set(wl.filter((_, i) => bins[i] === b))];
  assert.deepEqual(of('envoy'), [W.Pod], 'a pod as namespace/pod');
  assert.deepEqual(of('redis-server'), [W.Container], 'a container without a pod by its name');
  assert.deepEqual(of('postgres'), [W.IDOnly], 'an unnamed container by its id, cut to 12');
  assert.deepEqual(of('nginx'), [W.Unit], 'a host process by its systemd unit');
  assert.deepEqual(of('curl'), [''], 'a bare host process: empty');
  const titles = new Map((await cells('.workload')).map(([t, title]) => [t, title]));
  assert.match(titles.get(W.Pod), new RegExp('^' + W.PodImage.replace(/[.]/g, '\\.') + ' · container envoy, containerd$'), 'the image on hover');
  assert.match(titles.get(W.Container), new RegExp('^' + W.ContainerImage.replace(/[.]/g, '\\.') + ' '));
});

await check('connections: the Container/Pod filter narrows rows, pages and survives a reload', async () => {
  await page.goto(BASE + '/network/connections?page_size=50');
  await settle();
  await scopeBy('pod', W.Pod);
  assert.equal(url().searchParams.get('page_size'), '50', 'the other filters stay');
  const pages = Math.ceil(W.PodConnections / 50);
  assert.ok(pages >= 2, 'the fixture holds more than one page of the pod');
  assert.match(await statusText(), new RegExp(`^${W.PodConnections} connections across the fleet in pod ${W.Pod} · page 1 of ${pages}`));
  assert.deepEqual([...new Set(await column('Container/Pod'))], [W.Pod]);
  assert.deepEqual([...new Set(await column('Binary'))], ['envoy']);
  const keys1 = await page.locator('#content tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.key));
  assert.equal(keys1.length, 50);
  await page.click('#next');
  await page.waitForURL((u) => u.searchParams.get('page') === '2' && u.searchParams.get('pod') === W.Pod);
  await settle();
  const keys2 = await page.locator('#content tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.key));
  assert.equal(keys2.length, Math.min(50, W.PodConnections - 50));
  assert.equal(keys1.filter((k) => keys2.includes(k)).length, 0, 'pages do not overlap');
  assert.deepEqual([...new Set(await column('Container/Pod'))], [W.Pod], 'page 2 is narrowed too');
  await page.reload();
  await settle();
  assert.equal(await page.inputValue('#scope'), W.Pod, 'the field shows the URL\'s filter');
  assert.equal(await page.inputValue('#scope-kind'), 'pod');
  assert.equal(await page.locator('#content tbody tr').count(), Math.min(50, W.PodConnections - 50));
  // the same field names a container (by name) instead
  await scopeBy('container', W.Container);
  assert.equal(url().searchParams.get('page'), null, 'a new filter starts at page 1');
  assert.match(await statusText(), new RegExp(`^${W.ContainerConnections} connections across the fleet in container ${W.Container}`));
  assert.deepEqual([...new Set(await column('Container/Pod'))], [W.Container]);
  // and with the sensor filter both narrow
  await page.fill('#sensor', F.Core.Hostname);
  await page.press('#sensor', 'Enter');
  await page.waitForURL((u) => u.searchParams.get('sensor_id') === F.Core.ID && u.searchParams.get('container') === W.Container);
  await settle();
  const hosts = await hostColumn();
  assert.ok(hosts.length > 0 && hosts.length < W.ContainerConnections, `core-b holds some of the container's rows (${hosts.length})`);
  assert.deepEqual([...new Set(hosts)], [F.Core.Hostname]);
  assert.deepEqual([...new Set(await column('Container/Pod'))], [W.Container]);
  await shot('09-workloads');
  // no such container: nothing, said as such
  await scopeBy('container', 'no-such-container');
  assert.equal(await page.locator('#content tbody tr').count(), 0);
  assert.equal(await page.locator('#empty').isVisible(), true);
  await page.click('text=All workloads');
  await page.waitForURL((u) => !u.searchParams.has('container') && !u.searchParams.has('pod'));
  await settle();
  assert.match(await statusText(), new RegExp(`^${F.Core.Connections} connections on ${F.Core.Hostname} ·`));
  assert.equal(await page.inputValue('#scope'), '');
});

await check('listening, UDP and flows: the column and the filter', async () => {
  await page.goto(BASE + '/network/listening');
  await settle();
  await scopeBy('container', W.IDOnly);
  assert.deepEqual(await column('Container/Pod'), Array(W.IDOnlyListening).fill(W.IDOnly), 'a 12-digit id prefix finds the container');
  assert.deepEqual(await column('Binary'), Array(W.IDOnlyListening).fill('postgres'));
  await page.click('#tab-udp');
  await page.waitForURL((u) => u.searchParams.get('tab') === 'udp' && u.searchParams.get('container') === W.IDOnly);
  await settle();
  assert.equal(await page.locator('#content tbody tr').count(), 0, 'the UDP sockets are upf\'s, not postgres\'s');
  await scopeBy('pod', W.UDPPod);
  assert.deepEqual(await column('Container/Pod'), Array(F.Edge.UDP).fill(W.UDPPod));
  await page.goto(BASE + '/network/flows');
  await settle();
  const all = await column('Container/Pod');
  assert.equal(all.length, F.Flows);
  assert.equal(all.filter((w) => w === W.Pod).length, W.PodFlows);
  await scopeBy('pod', W.Pod);
  assert.deepEqual(await column('Container/Pod'), Array(W.PodFlows).fill(W.Pod));
  await scopeBy('container', W.Container);
  assert.deepEqual(await column('Container/Pod'), Array(W.ContainerFlows).fill(W.Container));
});

await check('investigate: the pod filter narrows events and load more keeps it', async () => {
  await page.goto(BASE + '/investigate?pod=' + encodeURIComponent(W.Pod));
  await page.waitForFunction(() => /events, newest first/.test(document.getElementById('status').textContent));
  assert.ok(W.PodEvents > 100, 'more than a page of the pod\'s events');
  assert.match(await statusText(), /^100\+ events/);
  assert.equal(await page.inputValue('#scope'), W.Pod);
  await page.click('#more');
  // a cursor sent without its filter is refused: the banner says so
  await page.waitForFunction((n) => document.querySelectorAll('#content tbody tr').length === n || !document.getElementById('error').hidden, W.PodEvents);
  assert.equal(await page.locator('#error').isHidden(), true, 'the cursor was accepted with its filter: ' + await page.locator('#error').innerText());
  assert.equal(await page.locator('#content tbody tr').count(), W.PodEvents);
  assert.equal(await page.locator('#more').isHidden(), true);
  assert.deepEqual([...new Set(await column('Container/Pod'))], [W.Pod]);
  assert.ok(W.PodEvents < F.EventsLastHour, 'the filter left other events out');
});

await check('investigate: kinds, window, newest first, load more, detail', async () => {
  await page.click('#nav a[data-view=investigate]');
  await page.waitForFunction(() => /events, newest first/.test(document.getElementById('status').textContent));
  assert.match(await statusText(), /^100\+ events/);
  assert.equal(await page.locator('#content tbody tr').count(), 100);
  await page.click('#more');
  await page.waitForFunction((n) => document.querySelectorAll('#content tbody tr').length === n, F.EventsLastHour);
  assert.equal(await page.locator('#more').isHidden(), true, 'no more pages');
  const times = await page.locator('#content tbody time').evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime')));
  assert.deepEqual(times, [...times].sort().reverse(), 'newest first');

  await page.check('.kinds input[value=dns_query]');
  await page.waitForURL((u) => u.searchParams.get('kind') === 'dns_query');
  await page.waitForFunction(() => /events, newest first/.test(document.getElementById('status').textContent));
  assert.deepEqual(await column('Kind'), ['dns_query']);
  await page.selectOption('#window', '6h');
  await page.waitForURL((u) => u.searchParams.get('window') === '6h');
  await page.waitForFunction(() => document.querySelectorAll('#content tbody tr').length === 6);
  assert.ok((await column('Kind')).every((k) => k === 'dns_query'));

  await page.check('.kinds input[value=network_connect]');
  await page.waitForURL((u) => u.searchParams.get('kind') === 'network_connect,dns_query' || u.searchParams.get('kind') === 'dns_query,network_connect');
  await page.waitForFunction(() => /events, newest first/.test(document.getElementById('status').textContent) && document.querySelectorAll('#content tbody tr').length === 100);
  await page.uncheck('.kinds input[value=dns_query]');
  await page.uncheck('.kinds input[value=network_connect]');
  await page.waitForURL((u) => !u.searchParams.has('kind'));

  // a custom window that holds only the old DNS queries
  await page.selectOption('#window', 'custom');
  await page.waitForURL((u) => u.searchParams.has('since'));
  const now = Date.now();
  const local = (ms) => { const d = new Date(ms + 5.5 * 3600e3); return d.toISOString().slice(0, 16); };
  await page.fill('#since', local(now - 4 * 3600e3));
  await page.fill('#until', local(now - 2 * 3600e3));
  await page.click('form.custom button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#content tbody tr').length === 5);
  assert.deepEqual([...new Set(await column('Kind'))], ['dns_query']);

  await page.locator('#content tbody tr').first().click();
  await page.waitForURL((u) => u.searchParams.has('event'));
  await page.locator('#detail').waitFor();
  const dts = await texts('#detail dt');
  for (const f of ['event_id', 'sensor_id', 'hostname', 'kind', 'time', 'received_at', 'protocol', 'src_address', 'src_port',
    'dst_address', 'dst_port', 'uid', 'pid', 'binary', 'binary_path', 'query_name', 'query_type', 'answers', 'state', 'source']) {
    assert.ok(dts.includes(f), `detail shows ${f}`);
  }
  const dd = await texts('#detail dd');
  assert.equal(dd[dts.indexOf('event_id')], url().searchParams.get('event'));
  assert.equal(dd[dts.indexOf('query_name')], 'example.org');
  await shot('07-investigate');

  // the URL restores the whole view, detail included
  const bookmark = page.url();
  await page.goto(BASE + '/network/summary');
  await settle();
  await page.goto(bookmark);
  await page.waitForFunction(() => document.querySelectorAll('#content tbody tr').length === 5);
  await page.locator('#detail').waitFor();
  assert.equal(await page.inputValue('#window'), 'custom');
  assert.equal(await page.locator('#content tbody tr[aria-selected=true]').count(), 1);
});

await check('a storage outage says what to do and keeps the rows', async () => {
  await page.goto(BASE + '/network/flows');
  await settle();
  await fetch(process.env.CONTROL_URL + '/?down=1');
  try {
    // the next refresh (5 s cadence) fails
    await page.locator('#error').waitFor({ timeout: 15000 });
    assert.match(await page.locator('#error').innerText(), /^Storage is unavailable .*retries on its own.*Showing the last data received\.$/);
    assert.equal(await page.locator('#content tbody tr').count(), F.Flows, 'rows kept');
    await shot('08-outage');
  } finally {
    await fetch(process.env.CONTROL_URL + '/?down=0');
  }
  await page.locator('#error').waitFor({ state: 'hidden', timeout: 15000 });
  assert.equal(await page.locator('#content tbody tr').count(), F.Flows);
});

await check('keyboard: rows reachable, Enter opens, Escape closes', async () => {
  await page.goto(BASE + '/network/flows');
  await settle();
  await page.locator('#content tbody tr').first().focus();
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await page.locator('#detail').waitFor();
  assert.equal(await page.locator('#content tbody tr[aria-selected=true]').count(), 1);
  assert.equal(await page.evaluate(() => document.activeElement.closest('tr') === document.querySelectorAll('#content tbody tr')[1]), true);
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#detail').isHidden(), true);
  // the sort headers are buttons: focusable and pressable
  await page.locator('th button[data-field=state]').focus();
  await page.keyboard.press('Enter');
  await page.waitForURL((u) => u.searchParams.get('sort') === 'state');
});

// ---- the search box, pivots, export (issue #17) ----

// answered waits until the view shows the answer to the current URL, for
// lists and Investigate alike.
const answered = async () => {
  await page.waitForFunction(() => !document.querySelector('#content[aria-busy]') &&
    (/updated/.test(document.getElementById('status').textContent) || !document.getElementById('error').hidden));
};
// viewTotal is the count the status line starts with.
const viewTotal = async () => Number((await statusText()).match(/^([\d,]+)/)[1].replace(/,/g, ''));
const search = async (text) => {
  await page.fill('#search', text);
  await page.press('#search', 'Enter');
};

await check('connections: TIME_WAIT hidden by default, the toggle counts and shows them', async () => {
  await page.goto(BASE + '/network/connections');
  await settle();
  assert.equal(await viewTotal(), F.Connections, 'TIME_WAIT left out');
  await page.waitForFunction(() => document.getElementById('time-wait').dataset.count !== undefined);
  assert.equal(await page.locator('#time-wait').innerText(), `Show ${F.TimeWait} TIME_WAIT (hidden)`);
  assert.equal(await page.locator('#time-wait').getAttribute('aria-pressed'), 'false');
  await page.selectOption('#page-size', '1000');
  await settle();
  assert.ok(!(await column('State')).includes('TIME_WAIT'), 'no TIME_WAIT row on screen');
  await page.click('#time-wait');
  await page.waitForURL((u) => u.searchParams.get('time_wait') === '1');
  await settle();
  assert.equal(await viewTotal(), F.Connections + F.TimeWait, 'shown: every connection');
  assert.ok((await column('State')).includes('TIME_WAIT'), 'TIME_WAIT rows on screen');
  assert.equal(await page.locator('#time-wait').innerText(), `Hide the ${F.TimeWait} TIME_WAIT`);
  await page.goBack();
  await settle();
  assert.equal(await viewTotal(), F.Connections, 'back: hidden again');
});

await check('search: every term type narrows the view to what the fleet says', async () => {
  for (const f of F.Searches) {
    const path = f.View === 'investigate' ? '/investigate' : '/network/' + f.View;
    await page.goto(BASE + path);
    await answered();
    await search(f.Text);
    await page.waitForURL((u) => u.pathname === path && u.search === '?' + f.Query);
    await answered();
    assert.equal(await page.locator('#error').isHidden(), true, `${f.Text}: ${await page.locator('#error').innerText()}`);
    if (f.View === 'investigate') {
      assert.match(await statusText(), new RegExp(`^${f.Rows} events`), f.Text);
      assert.equal(await page.locator('#content tbody tr').count(), f.Rows, f.Text);
    } else {
      assert.equal(await viewTotal(), f.Rows, f.Text);
    }
    if (f.Unapplied) {
      await shot('11-search-unapplied');
      assert.equal(await page.locator('#search-note').isVisible(), true, f.Text + ': the unapplied term is reported');
      assert.match(await page.locator('#search-note').innerText(), new RegExp('^Not applied to this view: ' + f.Unapplied.replace(/[.*]/g, '\\$&') + ' \\('));
    } else {
      assert.equal(await page.locator('#search-note').isHidden(), true, f.Text);
    }
    // the URL round trip: a reload shows the same terms and asks the same
    const before = page.url();
    await page.reload();
    await answered();
    assert.equal(page.url(), before, f.Text + ': the URL is kept');
    assert.deepEqual(await page.evaluate(async () => {
      const L = await import('/lib.mjs');
      return L.parseSearch(document.getElementById('search').value).terms;
    }), await page.evaluate(async (t) => (await import('/lib.mjs')).parseSearch(t).terms, f.Text), f.Text + ': the box reads the URL\'s terms');
    await page.press('#search', 'Enter');
    await answered();
    assert.equal(page.url(), before, f.Text + ': the box, submitted again, writes the same URL');
  }
  // sanity: the searches narrowed (none is the whole view)
  assert.ok(F.Searches.every((f) => f.Rows > 0 && (f.View !== 'connections' || f.Rows < F.Connections + F.TimeWait)), 'every search keeps some rows, not all');
});

await check('search: back and forward restore the searches, with the box', async () => {
  await page.goto(BASE + '/network/connections');
  await settle();
  const [a, b] = F.Searches.filter((f) => f.View === 'connections');
  await search(a.Text);
  await page.waitForURL((u) => u.search === '?' + a.Query);
  await settle();
  await search(b.Text);
  await page.waitForURL((u) => u.search === '?' + b.Query);
  await settle();
  await page.goBack();
  await settle();
  assert.equal(url().search, '?' + a.Query);
  assert.equal(await viewTotal(), a.Rows);
  assert.equal(await page.inputValue('#search'), a.Text);
  await page.goForward();
  await settle();
  assert.equal(url().search, '?' + b.Query);
  assert.equal(await viewTotal(), b.Rows);
  assert.equal(await page.inputValue('#search'), b.Text);
  await page.click('#search-clear');
  await page.waitForURL((u) => u.search === '');
  await settle();
  assert.equal(await viewTotal(), F.Connections);
});

await check('search: a bad term is said and not applied; the API\'s 400 is shown with its message', async () => {
  await page.goto(BASE + '/network/connections?port=22');
  await settle();
  await search('port:99999 proc:curl');
  await page.locator('#search-error').waitFor();
  assert.equal(await page.locator('#search-error').innerText(), 'port:99999 is not a port (1 to 65535)');
  assert.equal(await page.getAttribute('#search', 'aria-invalid'), 'true');
  assert.equal(url().search, '?port=22', 'nothing applied');
  await search('host:" unclosed');
  await page.locator('#search-error').waitFor();
  assert.match(await page.locator('#search-error').innerText(), /^unclosed quote/);
  // a value only the API can judge: its message reaches the user
  await search('state:BOGUS');
  await page.waitForURL((u) => u.searchParams.get('state') === 'BOGUS');
  await page.locator('#error').waitFor();
  assert.match(await page.locator('#error').innerText(), /^The filter was refused: state: "BOGUS" is not a state of connections; one of .*ESTABLISHED.*\. Change the filter and try again\.$/);
});

await check('pivots: a remote address opens Investigate; a binary, a port and a host narrow the view', async () => {
  await page.goto(BASE + `/network/connections?sensor_id=${F.Core.ID}`);
  await settle();
  const link = page.locator(`#content tbody td a.pivot`, { hasText: new RegExp('^' + F.PivotAddr.replace(/\./g, '\\.') + '$') }).first();
  assert.equal(await link.getAttribute('href'), '/investigate?addr=' + F.PivotAddr, 'a real link, middle-click opens it');
  // a modified click is the browser's: a new tab on the pivot's URL
  const [tab] = await Promise.all([ctx.waitForEvent('page'), link.click({ modifiers: ['Control'] })]);
  await tab.waitForLoadState();
  assert.equal(tab.url(), BASE + '/investigate?addr=' + F.PivotAddr);
  assert.equal(url().pathname, '/network/connections', 'this tab stays');
  await tab.close();
  await link.click();
  await page.waitForURL((u) => u.pathname === '/investigate' && u.search === '?addr=' + F.PivotAddr);
  await answered();
  assert.equal(await page.inputValue('#search'), F.PivotAddr);
  assert.equal(await page.locator('#content tbody tr').count(), F.PivotEvents);
  await shot('10-pivot-investigate');
  assert.deepEqual([...new Set(await column('Destination'))].map((d) => d.split(':')[0]), [F.PivotAddr]);
  // a binary narrows the open view
  await page.goto(BASE + '/network/connections');
  await settle();
  const curl = F.Searches.find((f) => f.Text === 'proc:curl');
  await page.locator('#content tbody a.pivot', { hasText: /^curl$/ }).first().click();
  await page.waitForURL((u) => u.search === '?binary=curl');
  await settle();
  assert.equal(await viewTotal(), curl.Rows);
  assert.equal(await page.inputValue('#search'), 'proc:curl');
  // a port narrows the view to it: a new question, the sensor is left
  const port = F.Searches.find((f) => f.Text === 'dns:example.org port:30001');
  await page.goto(BASE + `/network/connections?sensor_id=${F.Old.ID}`);
  await settle();
  await page.locator('#content tbody a.pivot', { hasText: /^30001$/ }).first().click();
  await page.waitForURL((u) => u.search === '?port=30001');
  await settle();
  assert.equal(await viewTotal(), port.Rows);
  // a host narrows to its sensor
  await page.locator('#content tbody a.pivot', { hasText: new RegExp('^' + F.Old.Hostname + '$') }).first().click();
  await page.waitForURL((u) => u.search === '?sensor_id=' + F.Old.ID);
  await settle();
  assert.equal(await viewTotal(), F.Old.Connections);
  // a pod narrows to it
  await page.goto(BASE + '/network/flows');
  await settle();
  await page.locator('#content tbody a.workload', { hasText: W.Pod }).first().click();
  await page.waitForURL((u) => u.searchParams.get('pod') === W.Pod);
  await settle();
  assert.equal(await viewTotal(), W.PodFlows);
});

await check('an event\'s detail links to its flow, its connection and its DNS lookup', async () => {
  await page.goto(BASE + `/investigate?kind=network_connect&port=${F.FlowEvent.SrcPort}`);
  await answered();
  assert.equal(await page.locator('#content tbody tr').count(), 1);
  await page.locator('#content tbody tr').first().click();
  await page.locator('#detail .lineage').waitFor();
  const href = (rel) => page.getAttribute(`#detail a[data-rel="${rel}"]`, 'href');
  const by = `sensor_id=${F.Edge.ID}&addr=${F.FlowEvent.DstAddress}&port=${F.FlowEvent.SrcPort}`;
  assert.equal(await href('flow'), `/network/flows?${by}`);
  assert.equal(await href('flow-closed'), `/investigate?${by}&kind=network_flow`);
  assert.equal(await href('connection'), `/network/connections?${by}&time_wait=1`);
  assert.equal(await href('dns'), `/investigate?sensor_id=${F.Edge.ID}&answer=${F.FlowEvent.DstAddress}`);
  await page.click('#detail a[data-rel="flow"]');
  await page.waitForURL((u) => u.pathname === '/network/flows');
  await settle();
  assert.equal(await viewTotal(), 1, 'the flow the connect opened');
  assert.deepEqual(await column('Source'), [`10.1.0.1:${F.FlowEvent.SrcPort}`]);
  await page.goBack();
  await answered();
  // a connect to the resolved address: its DNS lookup
  await page.goto(BASE + `/investigate?kind=network_connect&addr=${F.ConnectAddr}`);
  await answered();
  await page.locator('#content tbody tr').first().click();
  await page.locator('#detail a[data-rel="dns"]').click();
  await page.waitForURL((u) => u.searchParams.get('answer') === F.ConnectAddr);
  await answered();
  assert.equal(await page.locator('#content tbody tr').count(), F.DNSAnswering);
  assert.ok((await column('Kind')).every((k) => k.startsWith('dns_')));
  // and a DNS event links back to the traffic to its answers
  await page.locator('#content tbody tr').first().click();
  await page.locator('#detail a[data-rel="connects"]').click();
  await page.waitForURL((u) => u.searchParams.get('addr') === F.ConnectAddr && u.searchParams.get('kind') === 'network_connect');
  await answered();
  assert.ok(await page.locator('#content tbody tr').count() > 0);
});

// exported downloads the view's export in a format and returns its text.
const exported = async (fmt) => {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-' + fmt)]);
  assert.equal(await dl.failure(), null);
  const text = readFileSync(await dl.path(), 'utf8');
  await page.waitForFunction(() => /^Exported /.test(document.getElementById('export-status').textContent));
  return text;
};
const lines = (text) => text.split('\n').filter((l, i, a) => !(i === a.length - 1 && l === ''));

await check('export: the whole result of a view or a search, CSV and NDJSON, as many rows as the view counts', async () => {
  // the default Connections view (TIME_WAIT hidden): every page, not one
  await page.goto(BASE + '/network/connections');
  await settle();
  assert.ok(F.Connections > 100, 'more rows than a page');
  let csv = lines(await exported('csv'));
  assert.equal(csv.length - 1, await viewTotal(), 'a header and one line a row');
  assert.equal(csv.length - 1, F.Connections);
  const head = csv[0].split(',');
  assert.ok(head.includes('local_address') && head.includes('state'), 'a CSV header row: ' + csv[0]);
  const st = head.indexOf('state');
  assert.ok(csv.slice(1).every((l) => l.split(',')[st] !== 'TIME_WAIT'), 'the export leaves out what the view hides');
  // a search: the export has its filters
  const curl = F.Searches.find((f) => f.Text === 'proc:curl');
  await search(curl.Text);
  await page.waitForURL((u) => u.search === '?' + curl.Query);
  await settle();
  csv = lines(await exported('csv'));
  assert.equal(csv.length - 1, await viewTotal());
  assert.equal(csv.length - 1, curl.Rows);
  const bi = csv[0].split(',').indexOf('binary');
  assert.deepEqual([...new Set(csv.slice(1).map((l) => l.split(',')[bi]))], ['curl']);
  const nd = lines(await exported('ndjson')).map((l) => JSON.parse(l));
  assert.equal(nd.length, curl.Rows);
  assert.ok(nd.every((r) => r.binary === 'curl' && r.state !== 'TIME_WAIT'));
  assert.equal(await page.getAttribute('#export-csv', 'href'), `/api/v2/network/connections/export?${curl.Query}&state=%21TIME_WAIT&format=csv`, 'a link to the export endpoint');
  // Investigate: the window and the kinds too
  await page.goto(BASE + '/investigate?kind=network_connect');
  await answered();
  const ev = lines(await exported('ndjson')).map((l) => JSON.parse(l));
  assert.equal(ev.length, F.ConnectsLastHour, 'every connect of the window, not the first 100');
  assert.ok(ev.every((e) => e.kind === 'network_connect'));
});

// ---- Summary findings and the Map ----

await check('summary: the newest findings per sensor, each a link to Investigate', async () => {
  await page.goto(BASE + '/network/summary');
  await settle();
  const groups = page.locator('#findings ul.findings > li');
  assert.equal(await groups.count(), 1, 'one sensor has findings');
  assert.equal(await groups.first().getAttribute('data-sensor'), F.Findings.Sensor);
  assert.equal(await groups.first().locator('strong').innerText(), F.Core.Hostname);
  const kinds = await page.locator('#findings li[data-kind]').evaluateAll((ls) => ls.map((l) => l.dataset.kind));
  assert.deepEqual([...kinds].sort(), [...F.Findings.Kinds].sort());
  const dest = page.locator('#findings li[data-kind=baseline_new_destination]');
  assert.equal(await dest.locator('.what').innerText(), F.Findings.What, 'what is new');
  assert.match(await dest.locator('time').innerText(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  // the sensor table is still the Summary's one table
  assert.equal(await page.locator('#content tbody tr').count(), 3);
  await shot('12-summary-findings');
  await dest.locator('a').click();
  await page.waitForFunction(() => /events, newest first/.test(document.getElementById('status').textContent));
  assert.equal(url().pathname, '/investigate');
  assert.equal(url().searchParams.get('sensor_id'), F.Findings.Sensor);
  assert.equal(url().searchParams.get('kind'), 'baseline_new_destination');
  assert.equal(await page.locator('#content tbody tr').count(), 1, 'Investigate shows that finding');
  assert.deepEqual(await column('Kind'), ['baseline_new_destination']);
  assert.equal(await page.locator('#detail').isVisible(), true, 'the finding is selected');
});

const mapNodes = (kind) => page.locator('#map .node' + (kind ? '.' + kind : ''));
const mapDrawn = async (group) => {
  await settle();
  assert.equal(url().searchParams.get('group'), group === 'host' ? null : group);
};

await check('map: the searched graph from the heartbeats, grouped by host', async () => {
  const M = F.Map;
  await page.click('#nav a[data-view=map]');
  await settle();
  assert.equal(url().pathname, '/network/map');
  await page.fill('#search', M.Search);
  await page.press('#search', 'Enter');
  await mapDrawn('host');
  assert.equal(url().search, '?port=80&port=8080&port=8443', 'the search is in the URL');
  assert.match(await statusText(), new RegExp(`^${M.HostNodes} nodes · ${M.Edges} edges \\(${M.Edges} in the answer\\)`));
  assert.equal(await mapNodes().count(), M.HostNodes);
  assert.equal(await page.locator('#map .edge').count(), M.Edges);
  assert.deepEqual((await mapNodes('host').locator('.label').allTextContents()).sort(), [F.Core.Hostname, F.Edge.Hostname].sort());
  assert.deepEqual(await mapNodes('external').locator('.label').allTextContents(), [M.External], 'the external peer by its DNS name');
  const amb = mapNodes('ambiguous');
  assert.deepEqual(await amb.locator('.label').allTextContents(), [M.Ambiguous]);
  const sub = await amb.locator('.sub').textContent();
  assert.match(sub, /^ambiguous: /);
  assert.deepEqual(sub.replace(/^ambiguous: /, '').split(' | ').sort(), [F.Core.Hostname, F.Old.Hostname].sort(), 'its candidates');
  assert.equal(await page.locator('#map .edge.ambiguous').count(), 1, 'the edge to it is drawn apart');
  await shot('13-map');
});

await check('map: grouping by container and by service, back and forward', async () => {
  const M = F.Map;
  await page.selectOption('#group', 'container');
  await mapDrawn('container');
  assert.equal(await mapNodes().count(), M.ContainerNodes);
  assert.deepEqual(await mapNodes('container').locator('.label').allTextContents(), [M.Container]);
  assert.equal(await page.locator('#map .edge').count(), M.Edges);
  await page.selectOption('#group', 'service');
  await mapDrawn('service');
  assert.equal(await mapNodes().count(), M.ServiceNodes);
  assert.deepEqual(await mapNodes('service').locator('.label').allTextContents(), [`curl tcp/${M.JoinPort}`]);
  assert.equal(await page.inputValue('#search'), M.Search, 'the search stays');
  await page.goBack();
  await mapDrawn('container');
  assert.equal(await mapNodes().count(), M.ContainerNodes);
  assert.equal(await page.inputValue('#group'), 'container');
  await page.goBack();
  await mapDrawn('host');
  assert.equal(await mapNodes().count(), M.HostNodes);
  assert.equal(await page.inputValue('#group'), 'host');
});

await check('map: zoom by buttons and wheel, fit again', async () => {
  const vb = async () => (await page.getAttribute('#map', 'viewBox')).split(' ').map(Number);
  const fit = await vb();
  await page.click('#zoom-in');
  let z = await vb();
  assert.ok(Math.abs(z[2] - fit[2] / 1.25) < 1e-6, `+ zooms in by 1.25 (${fit} → ${z})`);
  await page.click('#zoom-out');
  z = await vb();
  assert.ok(Math.abs(z[2] - fit[2]) < 1e-6, '− zooms back out');
  const box = await page.locator('#map').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -300);
  await page.waitForFunction((w) => Number(document.getElementById('map').getAttribute('viewBox').split(' ')[2]) < w, fit[2]);
  await page.click('#zoom-fit');
  assert.deepEqual(await vb(), fit);
});

await check('map: an edge opens its numbers and a link to its flows', async () => {
  const M = F.Map;
  const id = `host:${F.Core.ID} → host:${F.Edge.ID}`;
  // A mouse click at the middle of the edge. Forced: an edge between two
  // nodes one above the other has a box of no width, which Playwright
  // calls invisible; its 10-unit hit stroke takes the click all the same.
  await page.locator(`#map .edge[data-id="${id}"] .hit`).click({ force: true });
  await page.locator('#detail').waitFor();
  assert.equal(await page.locator(`#map .edge.selected[data-id="${id}"]`).count(), 1);
  assert.equal(await page.locator('#detail-title').innerText(), `${F.Core.Hostname} → ${F.Edge.Hostname}`);
  const dts = await texts('#detail dt'), dds = page.locator('#detail dd');
  const dd = (k) => { const i = dts.indexOf(k); assert.ok(i >= 0, `no ${k} in ${dts}`); return dds.nth(i); };
  assert.equal(await dd('connections').innerText(), '1', 'both ends reported it: one connection');
  assert.equal(await dd('ports').innerText(), String(M.JoinPort));
  assert.equal(await dd('server addresses').innerText(), M.JoinServer);
  assert.equal(await dd('resolution').innerText(), 'observed');
  assert.equal(await dd('bytes client → server').getAttribute('title'), M.JoinSent + ' bytes');
  assert.equal(await dd('bytes server → client').getAttribute('title'), M.JoinReceived + ' bytes');
  assert.match(await dd('end states').innerText(), /^established 1, /);
  const link = page.locator('#detail a[data-rel=closed]');
  assert.equal(await link.getAttribute('href'),
    `/investigate?sensor_id=${F.Core.ID}&addr=${M.JoinServer}&port=${M.JoinPort}&binary=curl&kind=network_flow`);
  await link.click();
  await page.waitForFunction(() => /events, newest first/.test(document.getElementById('status').textContent));
  assert.equal(url().pathname, '/investigate');
  assert.deepEqual(await hostColumn(), [F.Core.Hostname], 'the client\'s report of the connection');
  assert.deepEqual(await column('Destination'), [`${M.JoinServer}:${M.JoinPort}`]);
  assert.deepEqual(await column('Kind'), ['network_flow']);
});

await check('map: a generated answer of 300 nodes (render time printed, not asserted)', async () => {
  // 40 hosts, each with 4 client processes and a server process; each
  // client to the next host's service and to one of 100 external peers:
  // grouped by service, 160 + 40 + 100 = 300 nodes and 320 edges.
  const nodes = [], edges = [];
  const sid = (i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
  const end = { protocol: 'tcp', active: 0, bytes_client_to_server: 1, bytes_server_to_client: 1, connections: 1,
    first_seen: new Date().toISOString(), last_seen: new Date().toISOString(), end_states: { established: 1, refused: 0, 'half-closed': 0, stale: 0 } };
  for (let x = 0; x < 100; x++) nodes.push({ id: 'external:peer' + x + '.example', kind: 'external', name: 'peer' + x + '.example', address: null });
  for (let i = 0; i < 40; i++) {
    const host = 'host:' + sid(i);
    nodes.push({ id: host, kind: 'host', sensor_id: sid(i), hostname: 'gen-' + i, site: '' });
    nodes.push({ id: `process:${sid(i)}/1/1/nginx`, kind: 'process', parent: host, sensor_id: sid(i), pid: 1, binary: 'nginx' });
    nodes.push({ id: `service:${sid(i)}/1/tcp/443`, kind: 'service', parent: `process:${sid(i)}/1/1/nginx`, sensor_id: sid(i), protocol: 'tcp', port: 443 });
    for (let k = 0; k < 4; k++) {
      const p = `process:${sid(i)}/1/${10 + k}/client${k}`;
      nodes.push({ id: p, kind: 'process', parent: host, sensor_id: sid(i), pid: 10 + k, binary: 'client' + k });
      const j = (i + 1) % 40;
      edges.push({ ...end, id: `s${i}-${k}`, source: p, target: `process:${sid(j)}/1/1/nginx`, service: `service:${sid(j)}/1/tcp/443`, port: 443,
        resolution: 'observed', peer_addresses: ['10.0.0.' + j] });
      edges.push({ ...end, id: `x${i}-${k}`, source: p, target: 'external:peer' + ((i * 4 + k) % 100) + '.example', service: '', port: 443,
        resolution: 'external', peer_addresses: ['203.0.113.' + ((i * 4 + k) % 100)] });
    }
  }
  await page.route('**/api/v1/network/graph?**', (r) => r.fulfill({ json: { nodes, edges, truncated: false } }));
  try {
    const ms = [];
    for (const w of ['15m', '6h', '24h']) {
      await page.goto(BASE + '/network/map?group=service&window=' + w);
      await settle();
      assert.equal(await mapNodes().count(), 300);
      assert.equal(await page.locator('#map .edge').count(), 320);
      ms.push(Number(await page.getAttribute('#content', 'data-render-ms')));
    }
    // the reference: building a 1000-row page of Connections, earlier in this run
    console.log(`     figure: a map of 300 nodes and 320 edges built in ${med(ms)} ms (median of 3); a 1000-row Connections page's DOM in ` +
      `${tableBuildMs} ms; ratio ${(med(ms) / tableBuildMs).toFixed(2)}`);
  } finally {
    await page.unroute('**/api/v1/network/graph?**');
  }
});

// ---- the time control (issue #18, time travel) ----

const P = F.Past;
const atParam = () => url().searchParams.get('at');
// timelineBars are the drawn bars: index, height and the moment a click picks.
const timelineBars = async () => {
  await page.locator('#timeline rect.bar').first().waitFor({ state: 'attached' });
  return page.locator('#timeline rect.bar').evaluateAll((rs) => rs.map((r) => ({ i: Number(r.dataset.i), h: Number(r.getAttribute('height')), moment: r.dataset.moment })));
};
// pastRows checks that the list shows edge-a's connections of three hours
// ago, and nothing of now.
const pastRows = async () => {
  assert.match(await statusText(), new RegExp(`^${P.Connections} connections across the fleet · page 1 of 1 · as it was at `));
  assert.equal(await page.locator('#content tbody tr').count(), P.Connections);
  assert.deepEqual([...new Set(await hostColumn())], [F.Edge.Hostname], 'only edge-a had reported');
  assert.ok((await column('Remote')).every((r) => r.startsWith(P.Remote)), 'its connections of then, none of now');
};

await check('time: a click on the timeline shows Connections as the fleet was; the banner names the moment; no refresh', async () => {
  await page.goto(BASE + '/network/connections?span=6h');
  await settle();
  const bars = await timelineBars();
  assert.equal(bars.length, 120, '6 h in bars of 3 minutes');
  const drawMs = Number(await page.getAttribute('#timeline-box', 'data-render-ms'));
  console.log(`     figure: the timeline's 120 bars drawn in ${drawMs} ms; a 1000-row Connections page's DOM in ${tableBuildMs} ms; ratio ${(drawMs / tableBuildMs).toFixed(3)}`);
  // the earliest bar with connections is the one edge-a's first heartbeat is in
  const b = bars.find((x) => x.h > 0);
  const m = Date.parse(b.moment);
  assert.ok(m >= P.AtMs && m - P.AtMs <= 180e3, `the first bar with connections (${b.moment}) ends within 3 minutes after the past heartbeat`);
  const box = await page.locator('#timeline').boundingBox();
  await page.mouse.click(box.x + ((b.i + 0.5) * box.width) / bars.length, box.y + box.height / 2);
  await page.waitForURL((u) => u.searchParams.get('at') === b.moment);
  await settle();
  await pastRows();
  assert.equal(url().searchParams.get('span'), '6h');
  const banner = await page.locator('#at-banner').innerText();
  assert.match(banner, /^Showing the fleet as it was at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\. The view does not refresh\. Back to now$/);
  assert.equal(await page.locator('#at-banner time').getAttribute('datetime'), b.moment);
  assert.equal(await page.getAttribute('#at-now', 'aria-pressed'), 'false');
  assert.equal(await page.locator('#timeline rect.bar.at').getAttribute('data-i'), String(b.i), 'the bar shown is marked');
  // the export is of the moment too
  assert.equal(new URL(await page.getAttribute('#export-csv', 'href'), BASE).searchParams.get('at'), b.moment);
  // sensors report every 5 s: a live view would have asked again by now
  const calls = [];
  const seen = (r) => { if (r.url().includes('/api/')) calls.push(r.url()); };
  page.on('request', seen);
  await page.waitForTimeout(7000);
  page.off('request', seen);
  assert.deepEqual(calls, [], 'no refresh at a moment');
  await shot('14-at-a-moment');
});

await check('time: the moment follows to the Summary and the Map, survives a reload and back/forward, then back to now', async () => {
  const at = atParam();
  await page.click('#nav a[data-view=summary]');
  await page.waitForURL((u) => u.pathname === '/network/summary');
  await settle();
  assert.equal(atParam(), at, 'the nav keeps the moment');
  const summaryThen = async () => {
    assert.deepEqual(await column('Host'), [F.Edge.Hostname], 'only edge-a had reported then');
    assert.deepEqual(await column('Active connections'), [String(P.AllConnections)]);
    assert.match(await page.locator('#at-banner').innerText(), /^Showing the fleet as it was at /);
  };
  await summaryThen();
  await page.reload();
  await settle();
  assert.equal(atParam(), at, 'a reload keeps the moment');
  await summaryThen();
  await page.goBack();
  await settle();
  assert.equal(url().pathname, '/network/connections');
  await pastRows();
  await page.goForward();
  await settle();
  await summaryThen();
  // the Map of the hour before the moment: edge-a and the peers it had then
  await page.click('#nav a[data-view=map]');
  await page.waitForURL((u) => u.pathname === '/network/map');
  await settle();
  assert.equal(atParam(), at);
  assert.deepEqual(await mapNodes('host').locator('.label').allTextContents(), [F.Edge.Hostname]);
  const peers = await mapNodes('external').locator('.label').allTextContents();
  assert.ok(peers.length > 0 && peers.every((p) => p.startsWith(P.Remote)), `its peers of then (${peers})`);
  await page.goBack();
  await settle();
  await summaryThen();
  await page.click('#back-to-now');
  await page.waitForURL((u) => !u.searchParams.has('at'));
  await settle();
  assert.equal(await page.locator('#at-banner').isHidden(), true);
  assert.equal(await page.locator('#content tbody tr').count(), 3, 'the whole fleet of now');
  assert.equal(await page.getAttribute('#at-now', 'aria-pressed'), 'true');
  await page.goBack();
  await settle();
  assert.equal(atParam(), at, 'back returns to the moment');
  await summaryThen();
});

await check('time: the keyboard picks a moment and returns to now; an exact moment typed; a pivot to Investigate is centred on it', async () => {
  await page.goto(BASE + '/network/connections?span=6h');
  await settle();
  const bars = await timelineBars();
  await page.focus('#timeline');
  await page.keyboard.press('End');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.getAttribute('#timeline', 'aria-valuenow'), String(bars.length - 2));
  assert.equal(atParam(), null, 'arrows only choose');
  await page.keyboard.press('Enter');
  await page.waitForURL((u) => u.searchParams.get('at') === bars[bars.length - 2].moment);
  await settle();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'timeline', 'focus stays on the timeline');
  await page.keyboard.press('Escape');
  await page.waitForURL((u) => !u.searchParams.has('at'));
  await settle();
  assert.match(await statusText(), new RegExp(`^${F.Connections} connections across the fleet`));
  // a minute after the past heartbeat, typed in the browser's zone (UTC+5:30)
  const typed = Math.floor((P.AtMs + 60e3) / 1000) * 1000;
  await page.fill('#at-input', new Date(typed + 5.5 * 3600e3).toISOString().slice(0, 19));
  await page.click('#at-form button[type=submit]');
  await page.waitForURL((u) => u.searchParams.get('at') === new Date(typed).toISOString().replace('.000Z', 'Z'));
  await settle();
  await pastRows();
  // an address pivots to its events of the hour around the moment
  await page.locator('#content tbody tr:first-child td:nth-child(3) a.pivot').first().click();
  await page.waitForURL((u) => u.pathname === '/investigate');
  assert.equal(atParam(), null, 'Investigate keeps a window, not a moment');
  assert.equal(Date.parse(url().searchParams.get('since')), typed - 30 * 60e3);
  assert.equal(Date.parse(url().searchParams.get('until')), typed + 30 * 60e3);
  assert.equal(await page.locator('#timectl').isHidden(), true, 'no time control on Investigate');
  await answered();
});

await check('errors say what to do; signing out hides the data', async () => {
  await page.goto(BASE + '/network/connections?page=999');
  await settle();
  assert.match(await page.locator('#empty').innerText(), /past the end/);
  await page.click('#signout');
  await page.locator('#signin-form').waitFor();
  assert.equal(await page.locator('#app').isHidden(), true);
  await page.reload();
  await page.locator('#signin-form').waitFor();
  assert.equal(await page.locator('#app').isHidden(), true, 'the token is forgotten');
});

assert.deepEqual(pageErrors, [], 'no script errors in the page');
await browser.close();
if (failures) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
