/**
 * The node agent's status page: one static HTML document with inline CSS and JS (no build step, no
 * external assets). It loads `/api/pods`, `/api/events` and `/api/store`, then follows `/events`
 * (server-sent events) and re-renders: pods and their containers' image state (Ready, pulling with
 * per-layer progress, `ErrImagePull`, `ImagePullBackOff` with the next retry time and the last error,
 * `ErrImageNeverPull`), the store (images, sizes, disk usage against the GC thresholds) and recent
 * events. Text is always set with `textContent` (manifest contents cannot inject markup).
 */

/** The page. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kimg node</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1f24; background: #fafbfc; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
  #conn { font-size: .85em; color: #57606a; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #d0d7de; vertical-align: top; }
  th { background: #f0f2f4; font-weight: 600; }
  code { font: 12px ui-monospace, monospace; }
  .Ready { color: #1a7f37; font-weight: 600; }
  .ErrImagePull, .ImagePullBackOff, .ErrImageNeverPull, .InvalidImageName, .ImageInspectError { color: #cf222e; font-weight: 600; }
  .ContainerCreating, .Pending { color: #9a6700; font-weight: 600; }
  .layer { display: flex; gap: .6em; align-items: center; font-size: .85em; }
  .bar { width: 14em; height: .7em; background: #eaeef2; border-radius: .35em; overflow: hidden; }
  .bar > div { height: 100%; background: #0969da; }
  .meta { color: #57606a; font-size: .85em; }
  .usage { width: 30em; height: 1em; background: #eaeef2; position: relative; border-radius: .2em; }
  .usage > .used { height: 100%; background: #0969da; }
  .usage > .mark { position: absolute; top: -.2em; bottom: -.2em; width: 2px; }
  .high { background: #cf222e; } .low { background: #9a6700; }
</style>
</head>
<body>
<h1>kimg node <span id="node"></span></h1>
<div id="conn">connecting…</div>
<h2>Pods</h2>
<table id="pods"><thead><tr><th>Pod</th><th>Status</th><th>Container</th><th>Image</th><th>Image state</th></tr></thead><tbody></tbody></table>
<h2>Store</h2>
<div id="usage"></div>
<table id="images"><thead><tr><th>Image</th><th>ID</th><th>Size</th><th>In use</th><th>Last used</th></tr></thead><tbody></tbody></table>
<table id="prepull" hidden><thead><tr><th>Pre-pull</th><th>Platform</th><th>State</th><th>Image ID / reason</th></tr></thead><tbody></tbody></table>
<h2>Events</h2>
<table id="events"><thead><tr><th>Type</th><th>Reason</th><th>Object</th><th>Last seen</th><th>Count</th><th>Message</th></tr></thead><tbody></tbody></table>
<script>
'use strict';
var model = { pods: [], events: [], store: null };
function el(tag, attrs, children) {
  var e = document.createElement(tag);
  if (attrs) for (var k in attrs) {
    if (k === 'text') e.textContent = attrs[k];
    else if (k === 'class') e.className = attrs[k];
    else e.setAttribute(k, attrs[k]);
  }
  (children || []).forEach(function (c) { if (c) e.appendChild(c); });
  return e;
}
function size(n) {
  if (!(n > 0)) return '0 B';
  var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
}
function ago(ms) {
  var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? s + 's' : Math.round(s / 60) + 'm';
}
function podStatus(p) {
  var init = p.containers.filter(function (c) { return c.list === 'initContainers'; });
  for (var i = 0; i < init.length; i++) if (init[i].state === 'Waiting' && init[i].reason && init[i].reason !== 'ContainerCreating') return 'Init:' + init[i].reason;
  for (var j = 0; j < p.containers.length; j++) { var c = p.containers[j]; if (c.state === 'Waiting' && c.reason && c.reason !== 'ContainerCreating') return c.reason; }
  var vs = p.volumes || [];
  for (var k = 0; k < vs.length; k++) if (vs[k].state === 'Waiting' && vs[k].reason && vs[k].reason !== 'ContainerCreating') return vs[k].reason;
  if (p.containers.length && p.containers.concat(vs).every(function (c) { return c.state === 'Ready'; })) return 'ImagesReady';
  return p.syncs === 0 ? 'Pending' : 'ContainerCreating';
}
function stateCell(c) {
  var td = el('td', { class: 'state' });
  if (c.state === 'Ready') {
    td.appendChild(el('span', { class: 'Ready', text: 'Present' }));
    td.appendChild(el('div', { class: 'meta', text: c.imageRef }));
    return td;
  }
  if (c.pulling) {
    td.appendChild(el('span', { class: 'ContainerCreating pulling', text: 'Pulling' }));
    c.pulling.layers.forEach(function (l) {
      var pct = l.size > 0 ? Math.floor((l.completed * 100) / l.size) : 100;
      var bar = el('div', { class: 'bar' }, [el('div', { style: 'width:' + pct + '%' })]);
      td.appendChild(el('div', { class: 'layer', 'data-digest': l.digest }, [
        el('code', { text: l.kind + ' ' + l.digest.slice(7, 19) }), bar,
        el('span', { class: 'progress', text: size(l.completed) + ' / ' + size(l.size) + ' (' + pct + '%)' + (l.cached ? ' cached' : '') })
      ]));
    });
    if (!c.pulling.layers.length) td.appendChild(el('div', { class: 'meta', text: 'resolving…' }));
    return td;
  }
  var reason = c.reason || 'Waiting';
  td.appendChild(el('span', { class: reason + ' reason', text: reason }));
  if (c.nextRetryAt) {
    var secs = Math.max(0, Math.ceil((c.nextRetryAt - Date.now()) / 1000));
    td.appendChild(el('div', { class: 'meta retry', text: 'next retry in ' + secs + 's (at ' + new Date(c.nextRetryAt).toLocaleTimeString() + ')' }));
  }
  if (c.lastError) td.appendChild(el('div', { class: 'meta lasterror', text: 'last error: ' + c.lastError }));
  else if (c.message) td.appendChild(el('div', { class: 'meta', text: c.message }));
  return td;
}
// An image volume shown as a row like a container's: its reference, pull policy and, once
// materialised, the manifest digest (with the image id) in place of the image id.
function volumeRow(v) {
  return { name: v.name, list: 'volume', image: v.reference, imagePullPolicy: v.pullPolicy, state: v.state, reason: v.reason, message: v.message,
    imageRef: v.digest ? v.digest + ' · ' + (v.kind || 'image') + (v.files && v.files.length ? ' · ' + v.files.join(', ') : '') : '', nextRetryAt: v.nextRetryAt, lastError: v.lastError };
}
function renderPods() {
  var tb = document.querySelector('#pods tbody');
  tb.textContent = '';
  if (!model.pods.length) tb.appendChild(el('tr', {}, [el('td', { colspan: '5', text: 'no pods (add manifests to the static pod directory)' })]));
  model.pods.forEach(function (p) {
    var st = podStatus(p);
    var rows = p.containers.concat((p.volumes || []).map(volumeRow));
    rows.forEach(function (c, i) {
      var tr = el('tr', { 'data-pod': p.namespace + '/' + p.name, 'data-container': c.name, 'data-reason': c.state === 'Ready' ? 'Ready' : (c.pulling ? 'Pulling' : c.reason) });
      if (i === 0) {
        tr.appendChild(el('td', { rowspan: String(rows.length) }, [el('strong', { text: p.name }), el('div', { class: 'meta', text: p.namespace + ' · ' + p.file })]));
        tr.appendChild(el('td', { rowspan: String(rows.length), class: st.replace('Init:', '') + ' podstatus', text: st }));
      }
      tr.appendChild(el('td', { text: c.name + (c.list === 'initContainers' ? ' (init)' : c.list === 'volume' ? ' (image volume)' : '') }));
      tr.appendChild(el('td', {}, [el('code', { text: c.image }), el('div', { class: 'meta', text: c.imagePullPolicy })]));
      tr.appendChild(stateCell(c));
      tb.appendChild(tr);
    });
  });
}
function renderStore() {
  var s = model.store; if (!s) return;
  var u = document.getElementById('usage'); u.textContent = '';
  if (s.usage) {
    var bar = el('div', { class: 'usage' }, [
      el('div', { class: 'used', style: 'width:' + s.usage.usedPercent + '%' }),
      el('div', { class: 'mark high', style: 'left:' + s.gc.highThresholdPercent + '%', title: 'GC high threshold' }),
      el('div', { class: 'mark low', style: 'left:' + s.gc.lowThresholdPercent + '%', title: 'GC low threshold' })
    ]);
    u.appendChild(bar);
    u.appendChild(el('div', { class: 'meta', text: 'image filesystem ' + s.usage.usedPercent + '% used (' + size(s.usage.capacityBytes - s.usage.availableBytes) + ' of ' + size(s.usage.capacityBytes) + '); GC high ' + s.gc.highThresholdPercent + '%, low ' + s.gc.lowThresholdPercent + '%; store ' + size(s.totalBytes) + ' in ' + s.images.length + ' image(s) at ' + s.root }));
  }
  if (s.gc.lastRun) u.appendChild(el('div', { class: 'meta', text: 'last GC ' + ago(s.gc.lastRun.at) + ' ago: ' + s.gc.lastRun.removed + ' image(s) removed, ' + size(s.gc.lastRun.reclaimed) + ' reclaimed' + (s.gc.lastRun.error ? ' — ' + s.gc.lastRun.error : '') }));
  renderPrepull();
  var tb = document.querySelector('#images tbody'); tb.textContent = '';
  s.images.forEach(function (i) {
    tb.appendChild(el('tr', {}, [
      el('td', {}, [el('code', { text: i.names[0] || '<none>' })]),
      el('td', {}, [el('code', { text: i.id.slice(7, 19) })]),
      el('td', { text: size(i.size) }),
      el('td', { text: i.inUse ? 'yes' : (i.pinned ? 'pinned' : '') }),
      el('td', { text: i.lastUsed ? new Date(i.lastUsed).toLocaleString() : '' })
    ]));
  });
}
function renderPrepull() {
  var s = model.store; if (!s || !s.prepull) return;
  var t = document.getElementById('prepull');
  t.hidden = s.prepull.length === 0;
  var tb = t.querySelector('tbody'); tb.textContent = '';
  s.prepull.forEach(function (p) {
    tb.appendChild(el('tr', { 'data-image': p.image, 'data-state': p.state }, [
      el('td', {}, [el('code', { text: p.image })]),
      el('td', { text: p.platform || 'node' }),
      el('td', { class: p.state === 'Present' ? 'Ready' : (p.state === 'Failed' ? p.reason : 'Pending'), text: p.state }),
      el('td', { text: p.state === 'Present' ? p.imageRef.slice(7, 19) : (p.reason ? p.reason + ': ' + p.message : '') })
    ]));
  });
}
function renderEvents() {
  var tb = document.querySelector('#events tbody'); tb.textContent = '';
  model.events.slice(-50).reverse().forEach(function (e) {
    var obj = e.object.kind === 'Pod' ? 'pod/' + e.object.name + (e.object.container ? ' ' + e.object.container : '') : 'node/' + e.object.name;
    tb.appendChild(el('tr', { 'data-reason': e.reason }, [
      el('td', { text: e.type }), el('td', { text: e.reason }), el('td', { text: obj }),
      el('td', { text: ago(e.lastTimestamp) }), el('td', { text: String(e.count) }), el('td', { text: e.message })
    ]));
  });
}
function load(path, fn) { return fetch(path).then(function (r) { return r.json(); }).then(fn); }
load('/api/pods', function (d) { document.getElementById('node').textContent = '· ' + d.node; model.pods = d.pods; renderPods(); });
load('/api/events', function (d) { model.events = d.events; renderEvents(); });
load('/api/store', function (d) { model.store = d; renderStore(); });
var es = new EventSource('/events');
es.onopen = function () { document.getElementById('conn').textContent = 'live'; };
es.onerror = function () { document.getElementById('conn').textContent = 'disconnected, retrying…'; };
es.addEventListener('pods', function (m) { model.pods = JSON.parse(m.data); renderPods(); });
es.addEventListener('events', function (m) { model.events = JSON.parse(m.data); renderEvents(); });
es.addEventListener('store', function (m) { model.store = JSON.parse(m.data); renderStore(); });
setInterval(function () { renderPods(); renderEvents(); renderStore(); }, 1000);
</script>
</body>
</html>
`;
