// The Frequency dashboard: one page, hash routes, the JSON API of SPEC §8 and nothing else.
// Every value from the server is put in the page as text (textContent, createElement,
// setAttribute), never as markup: subject names, data, logs and commit messages are data.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const PAGE = 100; // cards per column before "show more" (a board of 5,000 stays quick)
const BLOCKED = new Set(['blocked', 'predicate', 'cap', 'wip', 'lock', 'lane', 'budget', 'batch', 'exhausted']);

const S = {
  state: null, // the last /api/state
  skew: 0, // browser clock minus server clock, ms
  token: sessionStorage.getItem('freq-token') || '',
  inputs: {}, // what was typed in each field, by its key: kept across redraws
  limits: {}, // column key -> cards shown
  loading: false,
  again: false,
};

// ---------------------------------------------------------------- DOM helpers

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// Redraw the view; the field being typed in keeps its focus and caret (fields keep their
// text through S.inputs), so a live update never eats what a person is writing.
function show(...children) {
  const view = document.getElementById('view');
  const active = document.activeElement;
  const key = active && active.dataset ? active.dataset.key : undefined;
  const caret = key && typeof active.selectionStart === 'number' ? active.selectionStart : null;
  view.replaceChildren();
  append(view, children);
  if (key) {
    const again = [...view.querySelectorAll('[data-key]')].find((n) => n.dataset.key === key);
    if (again) {
      again.focus();
      if (caret !== null) again.setSelectionRange(caret, caret);
    }
  }
}

function field(key, props) {
  const node = el('input', { ...props, 'data-key': key });
  node.value = S.inputs[key] || '';
  node.addEventListener('input', () => { S.inputs[key] = node.value; });
  return node;
}

function choice(key, options, current, props) {
  const picked = S.inputs[key] !== undefined && options.includes(S.inputs[key]) ? S.inputs[key] : current;
  const node = el('select', { ...props, 'data-key': key },
    options.map((x) => el('option', { value: x, text: x, selected: x === picked })));
  node.addEventListener('change', () => { S.inputs[key] = node.value; });
  return node;
}

function say(text, ok) {
  const box = document.getElementById('message');
  box.textContent = text;
  box.className = ok ? 'ok' : '';
  box.hidden = !text;
}

function ago(iso) {
  if (!iso) return '';
  const ms = Date.now() - S.skew - Date.parse(iso);
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function usd(x) {
  return x === null || x === undefined ? '' : `$${Number(x).toFixed(4)}`;
}

function link(href, text, cls) {
  return el('a', { href, class: cls, text });
}

function route(...parts) {
  return '#/' + parts.map(encodeURIComponent).join('/');
}

// ---------------------------------------------------------------- API

async function get(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `${res.status}`);
  return body;
}

// A changing request: the token as a bearer header (never in the URL), JSON in and out.
// A refusal shows the one line the CLI would print.
async function act(path, body, done, clear) {
  if (S.acting) return null; // a second click while the first is on its way
  if (!S.token) askToken();
  S.acting = true;
  let res;
  try {
    res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${S.token}` },
      body: JSON.stringify(body || {}),
    });
  } catch (e) {
    say('the dashboard server cannot be reached; nothing was sent', false);
    return null;
  } finally {
    S.acting = false;
  }
  let answer = {};
  try { answer = await res.json(); } catch (e) { answer = { error: `${res.status} ${res.statusText}` }; }
  if (!res.ok) {
    say(answer.error || `refused (${res.status})`, false);
    return null;
  }
  for (const key of clear || []) delete S.inputs[key];
  say(done, true);
  refresh();
  return answer;
}

function askToken() {
  const given = window.prompt('Dashboard token (printed by git freq serve):', S.token);
  if (given !== null) {
    S.token = given.trim();
    sessionStorage.setItem('freq-token', S.token);
  }
}

// ---------------------------------------------------------------- live

function connect() {
  const live = document.getElementById('live');
  const source = new EventSource('/api/events');
  source.addEventListener('hello', () => {
    live.textContent = 'live';
    live.className = 'live on';
    refresh(); // after a server restart: whatever changed meanwhile
  });
  source.addEventListener('change', () => refresh());
  source.onerror = () => {
    live.textContent = 'reconnecting';
    live.className = 'live off';
  };
}

async function refresh() {
  if (S.loading) { S.again = true; return; }
  S.loading = true;
  try {
    await render();
    if (S.failed) { S.failed = false; say(''); } // the read that failed works again
  } catch (e) {
    S.failed = true;
    say(String(e.message || e), false);
  } finally {
    S.loading = false;
    if (S.again) { S.again = false; refresh(); }
  }
}

async function loadState() {
  const state = await get('/api/state');
  S.state = state;
  S.skew = Date.now() - Date.parse(state.now);
  document.body.dataset.version = String((Number(document.body.dataset.version) || 0) + 1);
  return state;
}

// ---------------------------------------------------------------- views

async function render() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const [page, a, b] = parts;
  if (page === 'f' && a) return board(await loadState(), a);
  if (page === 's' && a && b) return subjectPage(a, b);
  if (page === 'dlq') return dlqPage();
  if (page === 'locks') return locksPage(await loadState());
  if (page === 'costs') return costsPage(parts[1] || 'step');
  if (page === 'graph') return graphPage();
  return overview(await loadState());
}

function factoryControls(f) {
  const key = `control/${f.factory}`;
  const level = choice(`${key}/level`, ['auto', 'supervised', 'manual'], f.autonomy, { 'aria-label': 'autonomy', id: 'autonomy' });
  const reason = field(`${key}/reason`, { placeholder: 'reason', id: 'control-reason', 'aria-label': 'reason' });
  const path = `/api/factories/${encodeURIComponent(f.factory)}`;
  const clear = [`${key}/reason`, `${key}/level`];
  return el('div', { class: 'toolbar' },
    f.paused
      ? el('button', { id: 'resume', type: 'button', text: 'Resume',
        onclick: () => act(`${path}/resume`, { reason: reason.value }, `${f.factory} resumed`, clear) })
      : el('button', { id: 'pause', type: 'button', text: 'Pause',
        onclick: () => act(`${path}/pause`, { reason: reason.value }, `${f.factory} paused`, clear) }),
    level,
    el('button', { id: 'set-autonomy', type: 'button', text: 'Set autonomy',
      onclick: () => act(`${path}/autonomy`, { level: level.value, reason: reason.value }, `${f.factory}: autonomy ${level.value}`, clear) }),
    reason);
}

function overview(state) {
  const rows = state.factories.map((f) => el('tr', { 'data-factory': f.factory },
    el('td', {}, link(route('f', f.factory), f.factory), el('div', { class: 'muted', text: f.description })),
    el('td', { class: 'counts' }, f.states.map((s) => el('span', {}, `${s.state} `, el('b', { text: s.count })))),
    el('td', { text: f.running }),
    el('td', {}, f.dlq_waiting ? link('#/dlq', String(f.dlq_waiting)) : '0'),
    el('td', {}, f.paused ? el('span', { class: 'badge paused', text: 'paused' }) : 'running', ' · ', f.autonomy)));
  const budgets = (state.budgets || []).filter((b) => !b.problem).map((b) => el('tr', {},
    el('td', { text: `${b.scope} ${b.name}` }), el('td', { text: `${usd(b.spent)} of ${usd(b.usd)} per ${b.per}` }),
    el('td', { text: b.reached ? 'reached' : '' })));
  show(
    el('h1', { text: 'Factories' }),
    el('table', { id: 'factories' },
      el('thead', {}, el('tr', {}, ['factory', 'subjects per state', 'running', 'DLQ', 'control'].map((h) => el('th', { text: h })))),
      el('tbody', {}, rows)),
    state.quotas.length ? [el('h2', { text: 'Quota holds' }),
      el('ul', {}, state.quotas.map((q) => el('li', { text: `${q.name} until ${q.until}` })))] : null,
    budgets.length ? [el('h2', { text: 'Budgets' }), el('table', {}, el('tbody', {}, budgets))] : null,
    state.running.length ? [el('h2', { text: 'Running' }), el('ul', {}, state.running.map((r) => el('li', {},
      link(route('s', r.factory, r.subject), `${r.factory}/${r.subject}`),
      ` ${r.step} attempt ${r.attempt} for ${ago(r.claimed_at)}`, r.agent ? ` · ${r.agent}${r.model ? ' ' + r.model : ''}` : '')))] : null,
    state.problems.length ? [el('h2', { text: 'Problems reading state' }), el('ul', { id: 'problems' }, state.problems.map((p) => el('li', { text: p })))] : null,
  );
}

function badges(s) {
  const out = [];
  if (s.claim) out.push(el('span', { class: 'badge running', text: `${s.claim.step} ${ago(s.claim.claimed_at)}` }));
  if (s.parked) out.push(el('span', { class: 'badge dlq', text: `DLQ ${s.parked}` }));
  if (s.landing) out.push(el('span', { class: 'badge queued', text: `queued to land #${s.landing.position}` }));
  const w = s.wait;
  if (w) {
    let kind = null;
    if (w.kind === 'backoff') kind = ['backoff', 'backoff'];
    else if (w.kind === 'approval' || w.kind === 'gate') kind = ['approval', 'awaiting approval'];
    else if (w.kind === 'quota') kind = ['quota', 'quota-held'];
    else if (w.kind === 'paused') kind = ['paused', 'paused'];
    else if (BLOCKED.has(w.kind)) kind = ['blocked', 'blocked'];
    if (kind) out.push(el('span', { class: `badge ${kind[0]}`, title: w.reason, text: kind[1] }));
  }
  return out;
}

function card(s) {
  const c = s.claim;
  return el('a', { class: 'card', href: route('s', s.factory, s.name), 'data-subject': s.name },
    el('div', { class: 'name', text: s.name }),
    el('div', { class: 'meta', text: `attempt ${s.attempt} · ${ago(s.entered_at)} in state` }),
    c ? el('div', { class: 'meta', text: `${c.step} #${c.attempt} · ${ago(c.claimed_at)}${c.agent ? ` · ${c.agent}${c.model ? ' ' + c.model : ''}` : ''}` }) : null,
    el('div', {}, badges(s)));
}

function board(state, factory) {
  const f = state.factories.find((x) => x.factory === factory);
  if (!f) { show(el('h1', { text: `No factory ${factory}` })); return; }
  const needle = (S.inputs[`filter/${factory}`] || '').toLowerCase();
  const mine = state.subjects.filter((s) => s.factory === factory
    && (!needle || s.name.toLowerCase().includes(needle)));
  const byState = new Map(f.states.map((s) => [s.state, []]));
  for (const s of mine) {
    if (!byState.has(s.state)) byState.set(s.state, []);
    byState.get(s.state).push(s);
  }
  const filter = field(`filter/${factory}`, { id: 'filter', type: 'search', placeholder: 'filter subjects', 'aria-label': 'filter' });
  filter.addEventListener('input', () => board(S.state, factory));
  const columns = [...byState.entries()].map(([name, list]) => {
    const key = `${factory}/${name}`;
    const limit = S.limits[key] || PAGE;
    const more = list.length - limit;
    return el('section', { class: 'column', 'data-state': name },
      el('h2', {}, el('span', { text: name }), el('span', { class: 'count', text: list.length })),
      el('div', { class: 'cards' }, list.slice(0, limit).map(card)),
      more > 0 ? el('button', { type: 'button', class: 'more', text: `show ${Math.min(more, PAGE)} more of ${more}`,
        onclick: () => { S.limits[key] = limit + PAGE; board(S.state, factory); } }) : null);
  });
  show(
    el('h1', {}, `${factory} `, f.paused ? el('span', { class: 'badge paused', id: 'paused', text: 'paused' }) : null,
      el('span', { class: 'muted', text: ` ${f.subjects} subjects · ${f.running} running · autonomy ${f.autonomy}` })),
    factoryControls(f),
    el('div', { class: 'toolbar' }, filter),
    el('div', { class: 'board', id: 'board' }, columns));
}

// A running attempt's log grows without any ref moving: its page re-reads it every second.
function tailAgain(route) {
  clearTimeout(S.tail);
  S.tail = setTimeout(() => { if (location.hash === route) refresh(); }, 1000);
}

async function subjectPage(factory, name) {
  const [state, d] = await Promise.all([loadState(), get(`/api/subjects/${encodeURIComponent(factory)}/${encodeURIComponent(name)}`)]);
  const f = state.factories.find((x) => x.factory === factory);
  const subj = d.subject;
  const key = `subject/${factory}/${name}`;
  const target = choice(`${key}/state`, (f ? f.states : []).map((s) => s.state), subj.state, { id: 'to-state', 'aria-label': 'state' });
  const reason = field(`${key}/reason`, { id: 'move-reason', placeholder: 'reason (required)', 'aria-label': 'reason' });
  const clear = [`${key}/state`, `${key}/reason`];
  const approvals = (f ? f.steps : []).filter((st) => st.from_states.includes(subj.state)).map((st) =>
    el('button', { type: 'button', class: 'approve', text: `Approve ${st.id}`,
      onclick: () => act(`/api/approvals/${encodeURIComponent(factory)}/${encodeURIComponent(name)}/${encodeURIComponent(st.id)}`,
        { reason: reason.value }, `${st.id} approved`, clear) }));
  const data = Object.entries(subj.data || {});
  if (d.attempts.some((a) => a.running)) tailAgain(location.hash);
  show(
    el('h1', {}, link(route('f', factory), factory), ' / ', el('span', { id: 'subject-name', text: name })),
    el('div', { class: 'panel' },
      el('dl', { class: 'kv' },
        el('dt', { text: 'state' }), el('dd', { id: 'subject-state', text: subj.state }),
        el('dt', { text: 'attempt' }), el('dd', { text: subj.attempt }),
        el('dt', { text: 'in state for' }), el('dd', { text: ago(subj.entered_at) }),
        subj.claim ? [el('dt', { text: 'running' }), el('dd', { text: `${subj.claim.step} attempt ${subj.claim.attempt} on ${subj.claim.holder} for ${ago(subj.claim.claimed_at)}` })] : null,
        subj.parked ? [el('dt', { text: 'dead-letter' }), el('dd', {}, link('#/dlq', subj.parked))] : null,
        subj.last_error ? [el('dt', { text: 'last error' }), el('dd', { text: `${subj.last_error.step}: ${subj.last_error.kind}: ${subj.last_error.reason}` })] : null,
        d.landing ? [el('dt', { text: 'landing' }), el('dd', { text: `${d.landing.branch} → ${d.landing.target}${d.queue ? ` · #${d.queue.position} in its merge queue` : ''}${d.queue && d.queue.waiting ? ` · ${d.queue.waiting}` : ''}` })] : null,
        d.worktrees.map((w) => [el('dt', { text: 'worktree' }), el('dd', { text: `${w.path}${w.branch ? ` on ${w.branch}` : ''} (${w.holder})` })]),
        d.salvage.length ? [el('dt', { text: 'salvage' }), el('dd', { text: d.salvage.join(', ') })] : null,
        d.cost ? [el('dt', { text: 'cost' }), el('dd', { text: `${usd(d.cost.usd)} · ${d.cost.tokens_in} in / ${d.cost.tokens_out} out tokens · ${d.cost.attempts} attempts` })] : null,
        data.map(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]))),
    el('div', { class: 'panel' }, el('h2', { text: `Why (${d.why.kind})` }),
      el('ul', { id: 'why' }, (d.why.reasons || []).map((r) => el('li', { text: r })))),
    el('div', { class: 'panel toolbar' }, 'Move to', target, reason,
      el('button', { id: 'move', type: 'button', class: 'primary', text: 'Move',
        onclick: () => act(`/api/subjects/${encodeURIComponent(factory)}/${encodeURIComponent(name)}/transition`,
          { state: target.value, reason: reason.value }, `${name} moved to ${target.value}`, clear) }),
      approvals),
    el('h2', { text: 'Attempts' }),
    d.attempts.length ? d.attempts.map((a) => el('div', { class: 'panel attempt' },
      el('div', {}, el('b', { text: `${a.step} attempt ${a.attempt}` }), a.running ? el('span', { class: 'badge running', text: 'running' }) : null,
        el('span', { class: 'muted', text: ` ${a.events.join(', ')}${a.agent ? ` · ${a.agent}` : ''}${a.model ? ` ${a.model}` : ''}${a.cost_usd ? ` · $${a.cost_usd}` : ''}${a.exit_code !== undefined ? ` · exit ${a.exit_code}` : ''}` })),
      a.log !== null ? el('pre', { class: 'log', text: a.log || '(empty)' }) : null)) : el('p', { class: 'muted', text: 'no attempts yet' }),
    d.output_tail ? [el('h2', { text: 'Output tail' }), el('pre', { id: 'output-tail', text: d.output_tail })] : null,
    el('h2', { text: 'History' }),
    el('table', { id: 'history' }, el('tbody', {}, d.history.filter((h) => !h.renewal).map((h) => el('tr', {},
      el('td', { class: 'muted', text: h.at }), el('td', { text: h.summary }),
      el('td', { text: [h.trailers['Freq-By'], h.trailers['Freq-Reason']].filter(Boolean).join(': ') }),
      el('td', { class: 'muted', text: h.oid.slice(0, 10) }))))));
}

async function dlqPage() {
  const d = await get('/api/dlq');
  const rows = d.entries.map((e) => {
    const key = `dlq/${e.id}/reason`;
    const reason = field(key, { placeholder: 'reason', 'aria-label': 'reason' });
    const id = encodeURIComponent(e.id);
    return el('div', { class: 'panel dlq-entry', 'data-entry': e.id },
      el('div', {}, el('b', { text: e.id }), ' ', link(route('s', e.factory, e.subject), `${e.factory}/${e.subject}`),
        el('span', { class: 'muted', text: ` ${e.step} attempt ${e.attempt} · ${e.failure_class} · ${e.at}` })),
      e.question ? el('p', { class: 'question', text: `Question: ${e.question}` }) : null,
      el('p', { class: 'reason', text: e.reason }),
      e.diagnosis ? el('p', { class: 'diagnosis', text: `Diagnosis (${e.diagnosis_entry}): ${e.diagnosis}` }) : null,
      e.conflict.length ? el('p', { text: `conflict: ${e.conflict.join(', ')}` }) : null,
      e.output_tail ? el('pre', { class: 'log', text: e.output_tail }) : null,
      el('div', { class: 'toolbar' }, reason,
        el('button', { type: 'button', class: 'requeue primary', text: 'Requeue',
          onclick: () => act(`/api/dlq/${id}/requeue`, { reason: reason.value }, `${e.id} requeued`, [key]) }),
        el('button', { type: 'button', class: 'diagnose', text: 'Diagnose',
          onclick: () => { say(`diagnosing ${e.id}…`, true); act(`/api/dlq/${id}/diagnose`, {}, `${e.id} diagnosed`); } }),
        el('button', { type: 'button', class: 'fix', text: 'Fix (requeue with diagnosis)',
          onclick: () => act(`/api/dlq/${id}/fix`, { reason: reason.value }, `${e.id} requeued with its diagnosis`, [key]) })));
  });
  show(el('h1', { text: `Dead-letter queue (${d.entries.length})` }),
    rows.length ? rows : el('p', { class: 'muted', text: 'the dead-letter queue is empty' }),
    d.problems.length ? el('ul', {}, d.problems.map((p) => el('li', { text: p }))) : null);
}

function locksPage(state) {
  const rows = state.locks.map((l) => {
    const key = `lock/${l.name}/reason`;
    const reason = field(key, { placeholder: 'reason (required)', 'aria-label': 'reason' });
    return el('tr', { 'data-lock': l.name },
      el('td', { text: l.name }), el('td', { text: l.holder }), el('td', { text: l.subject }),
      el('td', { text: l.expires_at }), el('td', { text: l.held ? 'held' : `stale${l.why ? ': ' + l.why : ''}` }),
      el('td', {}, reason, el('button', { type: 'button', text: 'Break',
        onclick: () => act(`/api/locks/${encodeURIComponent(l.name)}/break`, { reason: reason.value }, `lock ${l.name} broken`, [key]) })));
  });
  const pool = state.worktrees;
  show(el('h1', { text: 'Locks and caps' }),
    el('table', { id: 'locks' }, el('thead', {}, el('tr', {}, ['lock', 'holder', 'subject', 'expires', 'status', ''].map((h) => el('th', { text: h })))),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: 6, class: 'muted', text: 'no locks held' })))),
    el('h2', { text: 'Caps' }),
    el('table', { id: 'caps' }, el('thead', {}, el('tr', {}, ['cap', 'in use', 'limit'].map((h) => el('th', { text: h })))),
      el('tbody', {}, state.caps.map((c) => el('tr', {}, el('td', { text: c.cap }), el('td', { text: c.used }), el('td', { text: c.limit }))))),
    state.quotas.length ? [el('h2', { text: 'Quota holds' }), el('ul', {}, state.quotas.map((q) => el('li', { text: `${q.name} until ${q.until}` })))] : null,
    state.queues.length ? [el('h2', { text: 'Merge queues' }), state.queues.map((q) => el('div', { class: 'panel' },
      el('b', { text: q.target }), q.waiting ? el('p', { class: 'muted', text: q.waiting }) : null,
      el('ol', {}, q.entries.map((e) => el('li', { text: `${e.factory}/${e.subject} ${e.branch}` })))))] : null,
    pool ? [el('h2', { text: `Worktree pool (${pool.slots.length} of ${pool.max})` }),
      el('ul', {}, pool.slots.map((s) => el('li', { text: `${s.slot}: ${s.holder || 'free'}${s.branch ? ' on ' + s.branch : ''}` })))] : null);
}

function bars(groups, value, label) {
  const max = Math.max(1e-9, ...groups.map(value));
  const height = 22 * groups.length + 10;
  const chart = svg('svg', { width: 760, height, role: 'img', 'aria-label': label });
  groups.forEach((g, i) => {
    const y = 5 + i * 22;
    const w = Math.round(400 * value(g) / max);
    chart.appendChild(svg('text', { x: 0, y: y + 14 }, g.group === '-' ? '(no agent: shell steps)' : g.group));
    chart.appendChild(svg('rect', { x: 200, y, width: Math.max(1, w), height: 16, fill: '#2563eb', rx: 2 }));
    chart.appendChild(svg('text', { x: 206 + w, y: y + 14 }, label === 'cost' ? usd(value(g)) : String(value(g))));
  });
  return chart;
}

async function costsPage(by) {
  const d = await get(`/api/costs?by=${encodeURIComponent(by)}`);
  const pick = el('select', { 'aria-label': 'group by', id: 'costs-by' },
    ['step', 'factory', 'subject', 'agent', 'model', 'day'].map((x) => el('option', { value: x, text: x, selected: x === by })));  // the route holds the choice
  pick.addEventListener('change', () => { location.hash = route('costs', pick.value); });
  const sp = d.split;
  const share = sp.step_share === null ? 0 : sp.step_share;
  const split = svg('svg', { width: 640, height: 40, role: 'img', 'aria-label': 'agent vs deterministic' });
  split.appendChild(svg('rect', { x: 0, y: 4, width: Math.round(600 * share), height: 18, fill: '#6941c6' }));
  split.appendChild(svg('rect', { x: Math.round(600 * share), y: 4, width: 600 - Math.round(600 * share), height: 18, fill: '#98a2b3' }));
  split.appendChild(svg('text', { x: 0, y: 36 }, `agent steps ${sp.agent_attempts} of ${sp.attempts} attempts · agent time ${sp.time_share === null ? '-' : Math.round(sp.time_share * 100) + '%'}`));
  show(el('h1', { text: 'Costs' }),
    el('div', { class: 'toolbar' }, 'Group by', pick,
      el('span', { class: 'muted', text: `total ${usd(d.total.usd)} · ${d.total.attempts} attempts · ${d.total.tokens_in} in / ${d.total.tokens_out} out tokens` })),
    el('h2', { text: 'Agent vs deterministic steps' }), split,
    el('h2', { text: `Cost per ${by}` }), d.groups.length ? bars(d.groups, (g) => g.usd, 'cost') : el('p', { class: 'muted', text: 'nothing spent yet' }),
    el('h2', { text: `Attempts per ${by}` }), d.groups.length ? bars(d.groups, (g) => g.attempts, 'attempts') : null,
    d.budgets.length ? [el('h2', { text: 'Budgets' }), el('ul', {}, d.budgets.map((b) => el('li', { text: `${b.scope} ${b.name}: ${usd(b.spent)} of ${usd(b.usd)} per ${b.per}${b.reached ? ' (reached)' : ''}` })))] : null);
}

async function graphPage() {
  const g = await get('/api/graph');
  const W = 130, H = 34, GAP = 40, ROW = 110;
  const pos = new Map();
  let width = 0;
  g.factories.forEach((f, row) => {
    f.states.forEach((st, i) => pos.set(`${f.factory}\u0000${st}`, { x: 120 + i * (W + GAP), y: 20 + row * ROW }));
    width = Math.max(width, 120 + f.states.length * (W + GAP));
  });
  const picture = svg('svg', { id: 'graph', width, height: 20 + g.factories.length * ROW, role: 'img', 'aria-label': 'factories' });
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' });
  marker.appendChild(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#68717d' }));
  defs.appendChild(marker);
  picture.appendChild(defs);
  const line = (a, b, color, dash, label) => {
    const bend = a.y === b.y ? (b.x > a.x ? -18 : 40) : 0;
    const x1 = a.x + W / 2, y1 = a.y + (a.y === b.y ? 0 : H), x2 = b.x + W / 2, y2 = b.y + (a.y === b.y ? 0 : 0);
    const path = svg('path', { d: `M ${x1} ${y1} C ${x1} ${y1 + bend}, ${x2} ${y2 + bend}, ${x2} ${y2}`, fill: 'none', stroke: color, 'stroke-dasharray': dash, 'marker-end': 'url(#arrow)' });
    picture.appendChild(path);
    if (label) picture.appendChild(svg('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 + bend * 0.8, fill: color }, label));
  };
  g.factories.forEach((f, row) => {
    picture.appendChild(svg('text', { x: 0, y: 42 + row * ROW, 'font-weight': 700 }, f.factory));
    for (const st of f.states) {
      const p = pos.get(`${f.factory}\u0000${st}`);
      picture.appendChild(svg('rect', { x: p.x, y: p.y, width: W, height: H, rx: 8, fill: '#fff', stroke: '#98a2b3' }));
      picture.appendChild(svg('text', { x: p.x + 8, y: p.y + 21 }, st));
    }
  });
  for (const e of g.edges) {
    const a = pos.get(`${e.factory}\u0000${e.from}`), b = pos.get(`${e.factory}\u0000${e.to}`);
    if (a && b && a !== b) line(a, b, '#68717d', '', e.step);
  }
  // between factories: a curve from the right of one state to the left of the other, its
  // label a tooltip (dozens of them would cover the picture)
  for (const e of g.cross) {
    const a = pos.get(`${e.from[0]}\u0000${e.from[1]}`), b = pos.get(`${e.to[0]}\u0000${e.to[1]}`);
    if (!a || !b) continue;
    const color = e.emits ? '#067647' : '#b54708';
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const path = svg('path', { d: `M ${x1} ${y1} C ${x1 + 60} ${y1}, ${x2 - 60} ${y2}, ${x2} ${y2}`, fill: 'none', stroke: color,
      'stroke-dasharray': e.emits ? '' : '4 3', 'marker-end': 'url(#arrow)', 'stroke-opacity': 0.8, class: 'cross' });
    path.appendChild(svg('title', {}, `${e.from[0]}.${e.from[1]} → ${e.to[0]}.${e.to[1]}: ${e.label}`));
    picture.appendChild(path);
  }
  show(el('h1', { text: 'Factories and the edges between them' }), el('div', { class: 'panel', style: null }, picture),
    el('p', { class: 'muted', text: 'grey: steps · green: emits · dashed orange: requires (hover a line for its step)' }),
    el('ul', { id: 'cross-edges' }, g.cross.map((e) => el('li', { text: `${e.from[0]}.${e.from[1]} → ${e.to[0]}.${e.to[1]}: ${e.label}` }))));
}

// ---------------------------------------------------------------- start

function start() {
  const m = location.hash.match(/^#token=([^&]*)/);
  if (m) {
    S.token = decodeURIComponent(m[1]);
    sessionStorage.setItem('freq-token', S.token);
    history.replaceState(null, '', location.pathname + '#/');
  }
  document.getElementById('token-button').addEventListener('click', askToken);
  window.addEventListener('hashchange', () => { say(''); refresh(); });
  connect();
  refresh();
  // times in state and elapsed times move on their own: the board is redrawn from the
  // state it has (no request) every few seconds
  setInterval(() => {
    const m = location.hash.match(/^#\/f\/(.+)$/);
    if (m && S.state && !S.loading) board(S.state, decodeURIComponent(m[1]));
  }, 5000);
}

start();
