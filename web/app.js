// The page of `lumio stream serve`: a flame graph (icicle) of the samples so
// far, polled every second from /api/flamegraph, keeping the zoom, the
// search, the thread and the time range; a strip of samples over time
// (/api/timeline) to brush a range; the summary line (/api/summary).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const state = {
    thread: '', from: null, to: null, search: '', zoomPath: [],
    lastKey: '', busy: false, drawn: false, total: 0, span: null, threads: '',
  };
  const chartWidth = () => Math.max(300, $('chart').clientWidth || window.innerWidth - 24);

  const frameKey = (d) => d.data.name + '\u0000' + (d.data.file || '');
  const pathOf = (d) => {
    const path = [];
    for (; d && d.parent; d = d.parent) path.unshift(frameKey(d));
    return path;
  };
  const findPath = (root, path) => {
    let n = root;
    for (const key of path) {
      n = (n.children || []).find((c) => frameKey(c) === key);
      if (!n) return null;
    }
    return n;
  };
  const percent = (v) => (state.total ? (100 * v / state.total).toFixed(2) : '0') + '%';

  const chart = flamegraph()
    .width(chartWidth())
    .cellHeight(18)
    .inverted(true) // an icicle: the root on top
    .sort(true)
    .transitionDuration(0)
    .minFrameSize(1)
    .setSearchMatch((d, term) =>
      !!term && String(d.data.name).toLowerCase().includes(term.toLowerCase()))
    .setLabelHandler((d) => d.data.name + (d.data.file ? ' (' + d.data.file + ')' : '') +
      ': ' + d.value + ' samples, ' + percent(d.value))
    .setDetailsElement($('details'))
    .onClick((d) => { state.zoomPath = pathOf(d); });

  async function getJSON(url) {
    const r = await fetch(url, { cache: 'no-store' });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error || r.statusText);
    return j;
  }

  function params(extra, withTime) {
    const p = new URLSearchParams();
    if (state.thread) p.set('thread', state.thread);
    if (withTime && state.from !== null) p.set('from', state.from);
    if (withTime && state.to !== null) p.set('to', state.to);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p.toString();
  }

  function draw(tree) {
    state.total = tree.value;
    const empty = !tree.value; // d3-flame-graph cannot lay out nothing
    $('chart').hidden = empty;
    if (empty) {
      $('details').textContent = 'no samples' + (state.thread || state.from !== null ? ' here' : ' yet');
      return;
    }
    if (!state.drawn) {
      d3.select('#chart').datum(tree).call(chart);
      state.drawn = true;
    } else {
      chart.update(tree);
    }
    if (state.zoomPath.length) {
      const n = findPath(d3.select('#chart').datum(), state.zoomPath);
      if (n) chart.zoomTo(n);
      else state.zoomPath = [];
    }
    if (state.search) chart.search(state.search);
  }

  // ---- the strip of samples over time, and its brush -------------------------
  const strip = d3.select('#timeline');
  const bars = strip.append('g');
  const brushG = strip.append('g').attr('class', 'brush');
  let x = null;
  const brush = d3.brushX().on('end', (event) => {
    if (!event.sourceEvent || !x) return; // moved by the code, not the user
    if (!event.selection) {
      state.from = state.to = null;
    } else {
      const [a, b] = event.selection.map((px) => x.invert(px));
      state.from = Math.max(0, Math.floor(a));
      state.to = Math.ceil(b);
    }
    refresh();
  });

  function drawTimeline(tl) {
    const w = $('timeline').clientWidth || chartWidth(), h = 48;
    state.span = tl.first_us === null ? null : [tl.first_us, tl.last_us];
    brush.extent([[0, 0], [w, h]]);
    brushG.call(brush);
    if (!state.span) {
      bars.selectAll('rect').remove();
      x = null;
      showRange();
      return;
    }
    x = d3.scaleLinear().domain([tl.first_us, tl.last_us + 1]).range([0, w]);
    const y = d3.scaleLinear().domain([0, d3.max(tl.bins) || 1]).range([0, h - 2]);
    const bw = w / tl.bins.length;
    bars.selectAll('rect').data(tl.bins).join('rect')
      .attr('class', 'bar')
      .attr('x', (_, i) => i * bw).attr('width', Math.max(1, bw - 0.5))
      .attr('y', (v) => h - y(v)).attr('height', (v) => y(v));
    if (state.from !== null) brushG.call(brush.move, [x(state.from), x(state.to)].map((v) => Math.max(0, Math.min(w, v))));
    else brushG.call(brush.move, null);
    showRange();
  }

  function showRange() {
    const s = state.span;
    if (state.from === null) {
      $('range').textContent = 'all time' + (s ? ' (' + ((s[1] - s[0]) / 1e6).toFixed(3) + ' s); drag over the strip to choose a range' : '');
      return;
    }
    const rel = (t) => (s ? ((t - s[0]) / 1e6).toFixed(3) : '?');
    $('range').textContent = 'from ' + rel(state.from) + ' s to ' + rel(state.to) + ' s (' +
      state.from + ' to ' + state.to + ' us)';
  }

  // ---- the summary and the thread list ---------------------------------------
  function showSummary(s) {
    $('source').textContent = s.source;
    const parts = [s.chunks + ' chunks', s.samples + ' samples'];
    if (s.dropped_samples) parts.push(s.dropped_samples + ' oldest dropped (--max-samples ' + s.max_samples + ')');
    if (s.truncated_stacks) parts.push(s.truncated_stacks + ' stacks cut (tree full)');
    parts.push(s.threads.length + ' threads');
    if (s.first_us !== null) parts.push(((s.last_us - s.first_us) / 1e6).toFixed(3) + ' s');
    const d = s.damage;
    parts.push(d.ranges ? 'damage: ' + d.ranges + ' ranges, ' + d.bytes + ' bytes skipped' : 'no damage');
    if (d.torn_tail_bytes) parts.push('torn tail ' + d.torn_tail_bytes + ' bytes');
    if (s.meta.command) parts.push('command: ' + s.meta.command);
    parts.push(s.error ? 'source failed: ' + s.error : s.ended ? 'source ended' : 'live');
    $('summary').textContent = parts.join(' \u00b7 ');
  }

  function updateThreads(s) {
    const sel = $('thread');
    const key = s.threads.map((t) => t.id + ' ' + (t.name || '')).join('\n');
    if (key !== state.threads) {
      state.threads = key;
      while (sel.options.length > 1) sel.remove(1);
      for (const t of s.threads) sel.add(new Option('', String(t.id)));
      sel.value = state.thread;
    }
    s.threads.forEach((t, i) => {
      sel.options[i + 1].textContent = t.id + (t.name ? ' ' + t.name : '') + ' (' + t.samples + ')';
    });
  }

  // ---- polling ------------------------------------------------------------------
  async function tick(force) {
    if (state.busy) return;
    state.busy = true;
    try {
      const s = await getJSON('/api/summary');
      showSummary(s);
      updateThreads(s);
      const key = [s.samples_seen, s.restarts, s.chunks, state.thread, state.from, state.to].join();
      if (force || key !== state.lastKey) {
        const min = Math.max(1, Math.floor(s.samples / 20000));
        const bins = Math.max(10, Math.min(400, Math.floor(chartWidth() / 3)));
        const [tree, tl] = await Promise.all([
          getJSON('/api/flamegraph?' + params({ min: min }, true)),
          getJSON('/api/timeline?' + params({ bins: bins }, false)),
        ]);
        state.lastKey = key;
        draw(tree);
        drawTimeline(tl);
      }
      $('status').textContent = '';
    } catch (e) {
      $('status').textContent = 'cannot update: ' + e.message;
    } finally {
      state.busy = false;
    }
  }
  const refresh = () => { state.lastKey = ''; tick(true); };

  $('thread').addEventListener('change', (e) => { state.thread = e.target.value; refresh(); });
  $('search').addEventListener('input', (e) => {
    state.search = e.target.value.trim();
    if (!state.drawn) return;
    if (state.search) chart.search(state.search);
    else chart.clear();
  });
  $('reset-zoom').addEventListener('click', () => { state.zoomPath = []; if (state.drawn) chart.resetZoom(); });
  $('all-time').addEventListener('click', () => { state.from = state.to = null; refresh(); });
  window.addEventListener('resize', () => { if (state.drawn) { chart.width(chartWidth()); refresh(); } });
  setInterval(() => { if ($('live').checked) tick(false); }, 1000);
  tick(true);
})();
