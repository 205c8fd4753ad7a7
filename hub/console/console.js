/* The operator console: one page, views chosen by the URL's #fragment, data
 * from the hub's JSON API (docs/operations.md), live updates from
 * GET /v1/events (Server-Sent Events, read with fetch so that the
 * Authorization header goes along). Every value is put in with textContent.
 *
 * Auth: when the API answers 401 the page asks for a token, keeps it in
 * sessionStorage and sends it as "Authorization: Bearer"; a 403 says that the
 * operator's role may not do this. A hub without auth never answers either. */
'use strict';

const TOKEN_KEY = 'fleet.token';
const ALERTS_KEY = 'fleet.alerts';
const ALERTS_MAX = 200;

/* ---- small helpers ------------------------------------------------------ */

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/* 900 -> "9.00" */
function money(cents) {
  if (cents == null) return '–';
  const neg = cents < 0;
  const abs = Math.abs(Math.round(cents));
  return (neg ? '-' : '') + Math.floor(abs / 100) + '.' + String(abs % 100).padStart(2, '0');
}

/* "in 3 min", "3 min ago", "just now" */
function ago(ms) {
  if (!ms) return '–';
  const d = Math.round((Date.now() - ms) / 1000);
  const a = Math.abs(d);
  let t;
  if (a < 10) return d >= 0 ? 'just now' : 'in a moment';
  if (a < 60) t = a + ' s';
  else if (a < 3600) t = Math.round(a / 60) + ' min';
  else if (a < 86400 * 2) t = Math.round(a / 3600) + ' h';
  else t = Math.round(a / 86400) + ' days';
  return d >= 0 ? t + ' ago' : 'in ' + t;
}

/* A time for people: "3 min ago", with the local date and time on hover. */
function when(ms) {
  if (!ms) return el('span', {class: 'muted'}, '–');
  return el('time', {class: 'ago', 'data-ms': ms, title: new Date(ms).toLocaleString(),
                     datetime: new Date(ms).toISOString()}, ago(ms));
}

function localTime(ms) {
  return ms ? new Date(ms).toLocaleString() : '–';
}

const STATE_CLASS = {
  AVAILABLE: 'ok', COMPLETED: 'ok', done: 'ok', HELD: 'ok', USED: 'ok',
  RENTED: 'busy', ACTIVE: 'busy', IN_PROGRESS: 'busy', IN_REPAIR: 'busy', calling: 'busy',
  RESERVED: 'wait', PAYMENT_PENDING: 'wait', REQUESTED: 'wait', REPAIR_REQUESTED: 'wait',
  CANCEL_REQUESTED: 'wait', RETURNED: 'wait', retry: 'wait',
  REJECTED: 'bad', failed: 'bad',
  RETIRED: 'off', CANCELLED: 'off', EXPIRED: 'off', cancelled: 'off',
};

function badge(state) {
  if (!state) return el('span', {class: 'muted'}, '–');
  return el('span', {class: 'badge ' + (STATE_CLASS[state] || '')}, state.replace(/_/g, ' '));
}

function onlineDot(online) {
  return el('span', {class: 'dot ' + (online ? 'on' : 'off')}, online ? 'online' : 'offline');
}

function link(hash, text) {
  return el('a', {href: hash}, text);
}

/* A table: cols are [title, row => cell content, class?]; rows get data-id. */
function table(rows, cols, idOf, empty) {
  if (!rows.length) return el('p', {class: 'empty'}, empty || 'Nothing here.');
  const head = el('tr', {class: 'head'}, cols.map(c => el('th', {class: c[2] || null}, c[0])));
  const body = rows.map(r => el('tr', {'data-id': idOf ? idOf(r) : null},
      cols.map(c => el('td', {class: c[2] || null, 'data-label': c[0]}, c[1](r)))));
  return el('table', {}, el('thead', {}, head), el('tbody', {}, body));
}

function notice(text, isError) {
  const n = document.getElementById('notice');
  n.textContent = text;
  n.className = 'notice' + (isError ? ' error' : '');
  n.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { n.hidden = true; }, isError ? 10000 : 5000);
}

/* ---- the API -------------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : 'the hub answered ' + status);
    this.status = status;
    this.code = body && body.code;
  }
}

function authHeaders() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? {Authorization: 'Bearer ' + t} : {};
}

async function api(method, path, body) {
  const init = {method, headers: authHeaders(), cache: 'no-store'};
  if (body !== undefined || method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body || {});
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, {error: 'the hub cannot be reached'});
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (resp.status === 401) {
    showLogin(sessionStorage.getItem(TOKEN_KEY) ? 'That token was refused; log in again.'
                                                : 'The hub asks for an access token.');
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/* What to tell a person about a failed call. */
function explain(e, what) {
  if (e.status === 403) return 'Your role may not do this' + (what ? ' (' + what + ')' : '') + '.';
  if (e.status === 401) return 'Log in to ' + (what || 'see this') + '.';
  if (e.status === 404 && e.code !== 'not_found' || e.status === 405)
    return 'This hub cannot ' + (what || 'do this') + ' yet (its API has no such route).';
  return (what ? 'Could not ' + what + ': ' : '') + e.message;
}

/* Runs an operator command from a button; disables it meanwhile. */
async function command(button, method, path, body, done, what) {
  if (button) button.disabled = true;
  try {
    const out = await api(method, path, body);
    notice(done);
    refresh();
    return out;
  } catch (e) {
    notice(explain(e, what), true);
    if (button) button.disabled = false;
    return null;
  }
}

/* ---- login ---------------------------------------------------------------- */

function showLogin(why) {
  document.getElementById('login-why').textContent = why;
  document.getElementById('login').hidden = false;
  document.getElementById('login-token').focus();
}

function setupLogin() {
  document.getElementById('login-form').addEventListener('submit', ev => {
    ev.preventDefault();
    const t = document.getElementById('login-token').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    document.getElementById('login').hidden = true;
    document.getElementById('login-token').value = '';
    document.getElementById('logout').hidden = false;
    live.restart();
    show();
  });
  const out = document.getElementById('logout');
  out.hidden = !sessionStorage.getItem(TOKEN_KEY);
  out.addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    out.hidden = true;
    live.restart();
    show();
  });
}

/* ---- alerts (kept for the session; they come from the live feed) -------- */

function alertsLoad() {
  try { return JSON.parse(sessionStorage.getItem(ALERTS_KEY)) || []; } catch (e) { return []; }
}

function alertsAdd(ev) {
  const list = alertsLoad();
  list.unshift({name: ev.to, id: ev.id, text: ev.text || '', at_ms: ev.at_ms || Date.now(),
                seen: false});
  sessionStorage.setItem(ALERTS_KEY, JSON.stringify(list.slice(0, ALERTS_MAX)));
  alertsCount();
}

function alertsCount() {
  const n = alertsLoad().filter(a => !a.seen).length;
  document.getElementById('count-alerts').textContent = n ? String(n) : '';
}

/* ---- views ------------------------------------------------------------------ */

/* Each view: title, build(params, root) makes the parts that stay (filters,
 * forms) and returns load(), which reads the API and redraws the data. */
const views = {};
let current = null; /* {name, load} */

views.fleet = {
  title: 'Fleet',
  build(params, root) {
    const filter = {state: params.get('state') || '', station: params.get('station') || '',
                    online: params.get('online') || ''};
    const counts = el('div');
    const stateSel = el('select', {id: 'filter-state'}, el('option', {value: ''}, 'any'));
    const stationSel = el('select', {id: 'filter-station'}, el('option', {value: ''}, 'any'));
    const onlineSel = el('select', {id: 'filter-online'}, el('option', {value: ''}, 'any'),
                         el('option', {value: 'yes'}, 'online'),
                         el('option', {value: 'no'}, 'offline'));
    onlineSel.value = filter.online;
    const list = el('div');
    const apply = () => {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries({state: stateSel.value, station: stationSel.value,
                                            online: onlineSel.value}))
        if (v) q.set(k, v);
      location.hash = '#/fleet' + (q.toString() ? '?' + q : '');
    };
    for (const s of [stateSel, stationSel, onlineSel]) s.addEventListener('change', apply);
    const stations = el('div');
    root.append(
      el('h1', {}, 'Fleet'),
      counts,
      el('div', {class: 'toolbar'},
         el('label', {}, 'State', stateSel), el('label', {}, 'Station', stationSel),
         el('label', {}, 'Connection', onlineSel),
         el('button', {type: 'button', class: 'primary', id: 'register-open',
                       onclick: () => { form.hidden = !form.hidden; }}, 'Register a vehicle')),
    );
    const form = registerForm();
    form.hidden = true;
    root.append(form, list, stations);

    return async () => {
      const [vehicles, devices] = await Promise.all([api('GET', '/v1/vehicles'),
                                                     api('GET', '/v1/devices')]);
      const online = new Map(devices.map(d => [d.id, !!d.online]));
      const byState = new Map(), byStation = new Map();
      for (const v of vehicles) {
        byState.set(v.state, (byState.get(v.state) || 0) + 1);
        const s = byStation.get(v.station) || {total: 0, AVAILABLE: 0, busy: 0, repair: 0,
                                                online: 0};
        s.total++;
        if (v.state === 'AVAILABLE') s.AVAILABLE++;
        else if (v.state === 'RENTED' || v.state === 'RESERVED') s.busy++;
        else if (v.state === 'REPAIR_REQUESTED' || v.state === 'IN_REPAIR') s.repair++;
        if (online.get(v.id)) s.online++;
        byStation.set(v.station, s);
      }
      /* the selects list what the fleet has, and keep the filter's choice */
      fillSelect(stateSel, [...byState.keys()].sort(), filter.state);
      fillSelect(stationSel, [...byStation.keys()].sort(), filter.station);

      const cards = el('div', {class: 'cards', id: 'state-counts'},
        el('a', {class: 'card' + (filter.state ? '' : ' current'), href: '#/fleet'},
           el('span', {class: 'n'}, vehicles.length), el('span', {class: 'what'}, 'vehicles')),
        [...byState.entries()].sort().map(([s, n]) =>
          el('a', {class: 'card' + (filter.state === s ? ' current' : ''), 'data-state': s,
                   href: '#/fleet?state=' + encodeURIComponent(s)},
             el('span', {class: 'n'}, n), badge(s))));
      const perStation = table([...byStation.entries()].sort().map(([name, s]) => ({name, ...s})), [
        ['Station', s => link('#/fleet?station=' + encodeURIComponent(s.name), s.name)],
        ['Vehicles', s => s.total, 'num'],
        ['Available', s => s.AVAILABLE, 'num'],
        ['Reserved or rented', s => s.busy, 'num'],
        ['In repair', s => s.repair, 'num'],
        ['Online', s => s.online, 'num'],
      ], s => s.name);
      perStation.id = 'station-counts';
      perStation.classList.add('compact');
      counts.replaceChildren(cards);
      stations.replaceChildren(el('h2', {}, 'Per station'), perStation);

      const shown = vehicles.filter(v =>
        (!filter.state || v.state === filter.state) &&
        (!filter.station || v.station === filter.station) &&
        (!filter.online || (filter.online === 'yes') === !!online.get(v.id)));
      list.replaceChildren(el('h2', {}, 'Vehicles (' + shown.length + ')'), table(shown, [
        ['Vehicle', v => link('#/vehicle/' + encodeURIComponent(v.id), v.id)],
        ['Name', v => v.name],
        ['Station', v => v.station],
        ['State', v => badge(v.state)],
        ['Connection', v => onlineDot(online.get(v.id))],
        ['Rental', v => v.rental ? link('#/rental/' + encodeURIComponent(v.rental), v.rental) : '–'],
        ['Rate / h', v => money(v.rate_cents), 'num'],
        ['Energy', v => v.energy_pct == null ? '–' : v.energy_pct + ' %', 'num'],
        ['Updated', v => when(v.updated_ms)],
      ], v => v.id, 'No vehicle matches.'));
    };
  },
};

function fillSelect(sel, values, chosen) {
  const keep = [...new Set([...values, ...(chosen ? [chosen] : [])])];
  sel.replaceChildren(sel.options[0], ...keep.map(v => el('option', {value: v}, v.replace(/_/g, ' '))));
  sel.value = chosen || '';
}

/* "9.00" or "9" -> 900; NaN when it is not an amount */
function cents(text) {
  const m = /^\s*(\d+)(?:[.,](\d{1,2}))?\s*$/.exec(text);
  return m ? Number(m[1]) * 100 + Number((m[2] || '0').padEnd(2, '0')) : NaN;
}

function registerForm() {
  const err = el('p', {class: 'form-error'});
  const f = el('form', {class: 'panel grid', id: 'register-form'},
    el('label', {}, 'Id', el('input', {name: 'id', required: true, placeholder: 'V42',
                                       pattern: '[A-Za-z0-9._:-]{1,32}'})),
    el('label', {}, 'Name', el('input', {name: 'name', required: true, placeholder: 'Clio blue'})),
    el('label', {}, 'Station', el('input', {name: 'station', required: true, placeholder: 'north'})),
    el('label', {}, 'Rate per hour', el('input', {name: 'rate', required: true, inputmode: 'decimal',
                                                  placeholder: '9.00'})),
    el('div', {class: 'actions'}, el('button', {type: 'submit', class: 'primary'}, 'Register')),
    err);
  f.addEventListener('submit', async ev => {
    ev.preventDefault();
    const d = new FormData(f);
    const rate = cents(d.get('rate'));
    if (!(rate > 0)) { err.textContent = 'The rate is an amount such as 9.00.'; return; }
    err.textContent = '';
    const id = d.get('id').trim();
    const ok = await command(f.querySelector('button'), 'POST', '/v1/vehicles',
      {id, name: d.get('name').trim(), station: d.get('station').trim(), rate_cents: rate},
      'Vehicle ' + id + ' registered.', 'register a vehicle');
    f.querySelector('button').disabled = false;
    if (ok) { f.reset(); f.hidden = true; }
  });
  return f;
}

views.vehicle = {
  title: 'Vehicle',
  build(params, root, id) {
    const head = el('div'), facts = el('div'), repair = el('div'), rentals = el('div'),
          bookings = el('div'), history = el('div');
    const edit = el('form', {class: 'panel grid', id: 'edit-form'},
      el('label', {}, 'Name', el('input', {name: 'name', required: true})),
      el('label', {}, 'Station', el('input', {name: 'station', required: true})),
      el('label', {}, 'Rate per hour', el('input', {name: 'rate', required: true, inputmode: 'decimal'})),
      el('div', {class: 'actions'},
         el('button', {type: 'submit', class: 'primary'}, 'Save'),
         el('button', {type: 'button', class: 'danger', id: 'retire',
                       onclick: ev => retire(ev.target)}, 'Retire')),
      el('p', {class: 'form-error'}));
    let filled = false;
    async function retire(button) {
      if (!confirm('Retire ' + id + '? It can no longer be rented or booked.')) return;
      await command(button, 'POST', '/v1/vehicles/' + encodeURIComponent(id) + '/retire', undefined,
                    'Vehicle ' + id + ' retired.', 'retire a vehicle');
    }
    edit.addEventListener('submit', async ev => {
      ev.preventDefault();
      const d = new FormData(edit);
      const rate = cents(d.get('rate'));
      const err = edit.querySelector('.form-error');
      if (!(rate > 0)) { err.textContent = 'The rate is an amount such as 9.00.'; return; }
      err.textContent = '';
      await command(edit.querySelector('button'), 'PATCH', '/v1/vehicles/' + encodeURIComponent(id),
        {name: d.get('name').trim(), station: d.get('station').trim(), rate_cents: rate},
        'Vehicle ' + id + ' saved.', 'edit a vehicle');
      edit.querySelector('button').disabled = false;
    });
    root.append(head, el('div', {class: 'columns'},
        el('div', {}, el('h2', {}, 'Now'), facts),
        el('div', {}, el('h2', {}, 'Edit'), edit)),
      el('h2', {}, 'Open repair'), repair,
      el('h2', {}, 'Bookings'), bookings,
      el('h2', {}, 'Rentals'), rentals,
      el('h2', {}, 'History'), history);

    return async () => {
      const enc = encodeURIComponent(id);
      const [v, devices, repairs, rs, bs, hist] = await Promise.all([
        api('GET', '/v1/vehicles/' + enc), api('GET', '/v1/devices'), api('GET', '/v1/repairs'),
        api('GET', '/v1/rentals?limit=20&vehicle=' + enc),
        api('GET', '/v1/bookings?limit=20&vehicle=' + enc),
        api('GET', '/v1/vehicles/' + enc + '/history?limit=50').catch(e => {
          if (e.status === 404 || e.status === 405) return null; /* an older hub */
          throw e;
        })]);
      const dev = devices.find(d => d.id === id);
      head.replaceChildren(el('h1', {}, v.id + ' · ' + (v.name || ''), ' ', badge(v.state)));
      facts.replaceChildren(el('dl', {class: 'panel facts', id: 'vehicle-facts'},
        el('dt', {}, 'Station'), el('dd', {}, v.station),
        el('dt', {}, 'Rate'), el('dd', {}, money(v.rate_cents) + ' per hour'),
        el('dt', {}, 'State'), el('dd', {}, badge(v.state)),
        el('dt', {}, 'Rental'), el('dd', {}, v.rental ? link('#/rental/' + encodeURIComponent(v.rental), v.rental) : '–'),
        el('dt', {}, 'Connection'), el('dd', {}, onlineDot(dev && dev.online),
                                          dev ? [' · last contact ', when(dev.last_seen_ms)] : ' · never connected'),
        el('dt', {}, 'Energy'), el('dd', {}, v.energy_pct == null ? '–' : v.energy_pct + ' %'),
        el('dt', {}, 'Odometer'), el('dd', {}, !v.odometer_m ? '–' :
                                       (v.odometer_m / 1000).toLocaleString(undefined, {maximumFractionDigits: 1}) + ' km'),
        el('dt', {}, 'Position'), el('dd', {}, v.lat == null ? '–' : v.lat.toFixed(5) + ', ' + v.lon.toFixed(5)),
        el('dt', {}, 'Last update'), el('dd', {}, when(v.updated_ms), ' · ', localTime(v.updated_ms))));
      if (!filled) {
        edit.elements.name.value = v.name || '';
        edit.elements.station.value = v.station || '';
        edit.elements.rate.value = money(v.rate_cents);
        filled = true;
      }
      edit.querySelector('#retire').disabled = v.state === 'RETIRED';
      const open = repairs.filter(r => r.vehicle === id && r.state !== 'COMPLETED');
      repair.replaceChildren(repairTable(open, 'No open repair.'));
      bookings.replaceChildren(bookingTable(bs, 'No booking.'));
      rentals.replaceChildren(rentalTable(rs, 'No rental yet.'));
      history.replaceChildren(hist == null ? el('p', {class: 'empty'}, 'This hub has no history route.') :
        table(hist, [
          ['When', h => when(h.at_ms)],
          ['Change', h => historyChange(h)],
          ['Rental', h => { const s = parseSnapshot(h.snapshot); return s.rental ?
            link('#/rental/' + encodeURIComponent(s.rental), s.rental) : '–'; }],
          ['Local time', h => localTime(h.at_ms)],
        ], h => String(h.seq), 'No change recorded.'));
    };
  },
};

/* One entry of a vehicle's history: a move between states, its
 * registration, or new details (telemetry, name, station, rate) in a state. */
function historyChange(h) {
  if (!h.from_state) return el('span', {}, 'registered as ', badge(h.to_state));
  if (h.from_state !== h.to_state) return el('span', {}, badge(h.from_state), ' → ', badge(h.to_state));
  const s = parseSnapshot(h.snapshot);
  const what = [s.energy_pct != null ? 'energy ' + s.energy_pct + ' %' : null,
                s.odometer_m ? (s.odometer_m / 1000).toFixed(1) + ' km' : null,
                s.station ? 'station ' + s.station : null,
                s.rate_cents != null ? money(s.rate_cents) + ' per hour' : null].filter(Boolean);
  return el('span', {class: 'muted'}, 'updated while ', badge(h.to_state), what.length ? ': ' + what.join(', ') : '');
}

function parseSnapshot(s) {
  if (s && typeof s === 'object') return s;
  try { return JSON.parse(s) || {}; } catch (e) { return {}; }
}

function rentalTable(rows, empty) {
  return table(rows, [
    ['Rental', r => link('#/rental/' + encodeURIComponent(r.id), r.id)],
    ['Vehicle', r => link('#/vehicle/' + encodeURIComponent(r.vehicle), r.vehicle)],
    ['Customer', r => r.customer],
    ['State', r => badge(r.state)],
    ['Price', r => money(r.amount_cents), 'num'],
    ['Charged', r => money(r.charged_cents), 'num'],
    ['Refunded', r => money(r.refunded_cents), 'num'],
    ['Late fee', r => r.fee_cents ? money(r.fee_cents) : '–', 'num'],
    ['Started', r => when(r.created_ms)],
    ['Due', r => r.state === 'ACTIVE' ? when(r.due_ms) : '–'],
    ['Reason', r => r.reason || '', 'wrap'],
  ], r => r.id, empty);
}

function repairTable(rows, empty) {
  return table(rows, [
    ['Repair', r => r.id],
    ['Vehicle', r => link('#/vehicle/' + encodeURIComponent(r.vehicle), r.vehicle)],
    ['State', r => badge(r.state)],
    ['Severity', r => r.severity || '–'],
    ['Fault', r => [r.dtcs, r.text].filter(Boolean).join(' · ') || '–', 'wrap'],
    ['Opened', r => when(r.opened_ms)],
    ['Updated', r => when(r.updated_ms)],
    ['', r => repairButtons(r)],
  ], r => r.id, empty);
}

function repairButtons(r) {
  const path = '/v1/repairs/' + encodeURIComponent(r.id);
  if (r.state === 'REQUESTED')
    return el('button', {type: 'button', 'data-action': 'start', onclick: ev =>
      command(ev.target, 'POST', path + '/start', undefined, 'Repair ' + r.id + ' started.',
              'start a repair')}, 'Start');
  if (r.state === 'IN_PROGRESS')
    return el('button', {type: 'button', class: 'primary', 'data-action': 'complete', onclick: ev =>
      command(ev.target, 'POST', path + '/complete', undefined, 'Repair ' + r.id + ' completed.',
              'complete a repair')}, 'Complete');
  return '';
}

function bookingTable(rows, empty) {
  return table(rows, [
    ['Booking', b => b.id],
    ['Vehicle', b => link('#/vehicle/' + encodeURIComponent(b.vehicle), b.vehicle)],
    ['Customer', b => b.customer],
    ['State', b => badge(b.state)],
    ['From', b => el('span', {title: localTime(b.start_ms)}, localTime(b.start_ms))],
    ['To', b => el('span', {title: localTime(b.end_ms)}, localTime(b.end_ms))],
    ['Deposit', b => money(b.deposit_cents), 'num'],
    ['Charged', b => money(b.charged_cents), 'num'],
    ['Refunded', b => money(b.refunded_cents), 'num'],
    ['Reason', b => b.reason || '', 'wrap'],
    ['', b => (b.state === 'HELD' || b.state === 'PAYMENT_PENDING') && b.end_ms > Date.now() ?
      el('button', {type: 'button', class: 'danger', 'data-action': 'cancel', onclick: ev =>
        command(ev.target, 'POST', '/v1/bookings/' + encodeURIComponent(b.id) + '/cancel', undefined,
                'Booking ' + b.id + ' cancelled.', 'cancel a booking')}, 'Cancel') : ''],
  ], b => b.id, empty);
}

/* A list view with a state filter. */
function listView(title, states, path, draw, filterKey) {
  return {
    title,
    build(params, root) {
      const key = filterKey || 'state';
      const chosen = params.get(key) || '';
      const sel = el('select', {id: 'filter-' + key}, el('option', {value: ''}, 'any'),
                     states.map(s => el('option', {value: s}, s.replace(/_/g, ' '))));
      sel.value = chosen;
      sel.addEventListener('change', () => {
        location.hash = '#/' + current.name + (sel.value ? '?' + key + '=' + sel.value : '');
      });
      const list = el('div');
      root.append(el('h1', {}, title), el('div', {class: 'toolbar'},
                  el('label', {}, key === 'state' ? 'State' : 'Status', sel)), list);
      return async () => {
        const q = new URLSearchParams({limit: '200'});
        if (chosen) q.set(key, chosen);
        const rows = await api('GET', path + '?' + q);
        list.replaceChildren(draw(rows));
      };
    },
  };
}

views.rentals = listView('Rentals',
  ['PAYMENT_PENDING', 'ACTIVE', 'CANCEL_REQUESTED', 'RETURNED', 'COMPLETED', 'CANCELLED', 'REJECTED'],
  '/v1/rentals', rows => rentalTable(rows, 'No rental.'));
views.bookings = listView('Bookings',
  ['PAYMENT_PENDING', 'HELD', 'USED', 'CANCELLED', 'REJECTED', 'EXPIRED'],
  '/v1/bookings', rows => bookingTable(rows, 'No booking.'));
views.repairs = listView('Repairs', ['REQUESTED', 'IN_PROGRESS', 'COMPLETED'],
  '/v1/repairs', rows => repairTable(rows, 'No repair.'));

views.rental = {
  title: 'Rental',
  build(params, root, id) {
    const body = el('div');
    root.append(body);
    return async () => {
      const r = await api('GET', '/v1/rentals/' + encodeURIComponent(id));
      const stuck = (r.saga_steps || []).some(s => s.status === 'retry' || s.status === 'failed');
      body.replaceChildren(
        el('h1', {}, 'Rental ' + r.id + ' ', badge(r.state)),
        el('dl', {class: 'panel facts'},
          el('dt', {}, 'Vehicle'), el('dd', {}, link('#/vehicle/' + encodeURIComponent(r.vehicle), r.vehicle)),
          el('dt', {}, 'Customer'), el('dd', {}, r.customer),
          el('dt', {}, 'Kiosk'), el('dd', {}, r.kiosk || '–'),
          el('dt', {}, 'Minutes'), el('dd', {}, r.minutes),
          el('dt', {}, 'Price'), el('dd', {}, money(r.amount_cents)),
          el('dt', {}, 'Charged'), el('dd', {}, money(r.charged_cents)),
          el('dt', {}, 'Refunded'), el('dd', {}, money(r.refunded_cents)),
          el('dt', {}, 'Late fee'), el('dd', {}, money(r.fee_cents)),
          el('dt', {}, 'Requested'), el('dd', {}, when(r.created_ms), ' · ', localTime(r.created_ms)),
          el('dt', {}, 'Due'), el('dd', {}, when(r.due_ms), ' · ', localTime(r.due_ms)),
          el('dt', {}, 'Ended'), el('dd', {}, r.ended_ms ? localTime(r.ended_ms) : '–'),
          el('dt', {}, 'Reason'), el('dd', {}, r.reason || '–')),
        el('h2', {}, 'Saga steps'),
        sagaTable(r.saga_steps || [], 'No payment step yet.', false),
        stuck ? el('div', {class: 'toolbar'}, sagaButtons(r.id)) : null);
    };
  },
};

function sagaButtons(rental) {
  const path = '/v1/rentals/' + encodeURIComponent(rental);
  return [
    el('button', {type: 'button', class: 'primary', 'data-action': 'retry', onclick: ev =>
      command(ev.target, 'POST', path + '/retry', undefined, 'Rental ' + rental + ': step run again.',
              'retry a saga')}, 'Retry now'),
    el('button', {type: 'button', class: 'danger', 'data-action': 'compensate', onclick: ev => {
      if (confirm('Compensate rental ' + rental + '? It is cancelled, the vehicle freed and any charge refunded.'))
        command(ev.target, 'POST', path + '/compensate', undefined,
                'Rental ' + rental + ' compensated.', 'compensate a saga');
    }}, 'Compensate'),
  ];
}

function sagaTable(rows, empty, withRental) {
  return table(rows, [
    withRental ? ['Rental', s => link('#/rental/' + encodeURIComponent(s.rental), s.rental)] : null,
    ['Step', s => s.step],
    ['Status', s => badge(s.status)],
    ['Amount', s => money(s.amount_cents), 'num'],
    ['Attempts', s => s.attempts, 'num'],
    ['Last error', s => s.last_error || '–', 'wrap'],
    ['Next try', s => s.status === 'retry' ? when(s.next_try_ms) : '–'],
    ['Updated', s => when(s.updated_ms)],
    withRental ? ['', s => sagaButtons(s.rental)] : null,
  ].filter(Boolean), s => s.rental + ':' + s.step, empty);
}

views.sagas = {
  title: 'Stuck sagas',
  build(params, root) {
    const list = el('div');
    root.append(el('h1', {}, 'Stuck sagas'),
      el('p', {class: 'muted'}, 'Payment steps waiting for another try or failed. Retry runs the step ' +
         'now; compensate cancels the rental, frees the vehicle and refunds what was charged.'),
      list);
    return async () => {
      const [retry, failed] = await Promise.all([api('GET', '/v1/sagas?status=retry&limit=200'),
                                                 api('GET', '/v1/sagas?status=failed&limit=200')]);
      list.replaceChildren(sagaTable([...failed, ...retry], 'No stuck saga.', true));
    };
  },
};

views.alerts = {
  title: 'Alerts',
  build(params, root) {
    const list = el('div');
    root.append(el('h1', {}, 'Alerts'),
      el('p', {class: 'muted'}, 'Raised by the hub while this console is open (rental overdue, ' +
         'fault on a rented vehicle, unlock refused, command not applied).'),
      el('div', {class: 'toolbar'}, el('button', {type: 'button', onclick: () => {
        sessionStorage.removeItem(ALERTS_KEY); alertsCount(); refresh();
      }}, 'Clear')),
      list);
    return async () => {
      const all = alertsLoad();
      sessionStorage.setItem(ALERTS_KEY, JSON.stringify(all.map(a => ({...a, seen: true}))));
      alertsCount();
      list.replaceChildren(table(all, [
        ['When', a => when(a.at_ms)],
        ['Alert', a => el('span', {class: 'badge bad'}, a.name.replace(/_/g, ' '))],
        ['About', a => a.id],
        ['Text', a => a.text, 'wrap'],
      ], null, 'No alert since this console was opened.'));
    };
  },
};

views['dead-letters'] = {
  title: 'Dead letters',
  build(params, root) {
    const list = el('div');
    root.append(el('h1', {}, 'Dead letters'),
      el('p', {class: 'muted'}, 'Messages the hub could not apply, kept with the reason.'), list);
    return async () => {
      const rows = await api('GET', '/v1/dead-letters?limit=100');
      list.replaceChildren(table(rows, [
        ['#', d => d.id, 'num'],
        ['Received', d => when(d.received_ms)],
        ['Device', d => d.device || '–'],
        ['Reason', d => el('span', {class: 'badge bad'}, d.error)],
        ['Detail', d => d.detail, 'wrap'],
        ['Topic', d => d.topic, 'wrap'],
      ], d => String(d.id), 'No dead letter.'));
    };
  },
};

views.devices = {
  title: 'Devices',
  build(params, root) {
    const list = el('div');
    root.append(el('h1', {}, 'Devices'), list);
    return async () => {
      const rows = await api('GET', '/v1/devices');
      list.replaceChildren(table(rows, [
        ['Device', d => d.role === 'vehicle' ? link('#/vehicle/' + encodeURIComponent(d.id), d.id) : d.id],
        ['Role', d => d.role || '–'],
        ['Connection', d => onlineDot(d.online)],
        ['Last contact', d => when(d.last_seen_ms)],
        ['Events in', d => d.up_seq, 'num'],
        ['Sent / acked', d => d.down_seq + ' / ' + d.down_applied, 'num'],
        ['Clock skew', d => d.clock_skew_ms == null ? '–' : (d.clock_skew_ms / 1000).toFixed(1) + ' s', 'num'],
      ], d => d.id, 'No device has connected yet.'));
    };
  },
};

/* ---- navigation and refresh --------------------------------------------------- */

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '') || 'fleet';
  const [path, query] = h.split('?');
  const [name, ...rest] = path.split('/');
  return {name: views[name] ? name : 'fleet', id: rest.map(decodeURIComponent).join('/'),
          params: new URLSearchParams(query || '')};
}

function show() {
  const {name, id, params} = parseHash();
  const view = views[name];
  const tab = {vehicle: 'fleet', rental: 'rentals'}[name] || name;
  for (const a of document.querySelectorAll('#tabs a'))
    a.classList.toggle('current', a.dataset.tab === tab);
  const root = document.getElementById('view');
  root.replaceChildren();
  document.title = view.title + (id ? ' ' + id : '') + ' · fleet hub';
  current = {name, load: view.build(params, root, id), root};
  refresh();
}

/* Reads the current view again; calls while one runs fold into one more. */
let loading = false, again = false;
async function refresh() {
  if (loading) { again = true; return; }
  loading = true;
  const view = current;
  try {
    await view.load();
    view.root.removeAttribute('data-error');
  } catch (e) {
    if (view === current) {
      view.root.dataset.error = e.status || 'offline';
      if (e.status !== 401)
        view.root.replaceChildren(el('p', {class: 'empty', id: 'view-error'},
          e.status === 404 ? e.message : explain(e, 'read this')));
    }
  }
  badgeCounts();
  view.root.dataset.loadedAt = String(Date.now());
  loading = false;
  if (again) { again = false; setTimeout(refresh, 250); }
}

/* The live feed asks for a refresh; many events in a burst make one. */
let pending = null;
function refreshSoon() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 300);
}

async function badgeCounts() {
  try {
    const [repairs, retry, failed] = await Promise.all([
      api('GET', '/v1/repairs?state=REQUESTED'), api('GET', '/v1/sagas?status=retry&limit=1000'),
      api('GET', '/v1/sagas?status=failed&limit=1000')]);
    document.getElementById('count-repairs').textContent = repairs.length ? String(repairs.length) : '';
    const stuck = retry.length + failed.length;
    document.getElementById('count-sagas').textContent = stuck ? String(stuck) : '';
  } catch (e) { /* shown by the view */ }
}

async function health() {
  const h = document.getElementById('health');
  try {
    const r = await fetch('/v1/health', {cache: 'no-store', headers: authHeaders()});
    const j = await r.json();
    h.textContent = (j.ready ? 'ready' : 'not ready') + ' · broker ' +
      (j.mqtt_connected ? 'connected' : 'DOWN') + ' · payments ' + j.breaker +
      (j.payments_pending ? ' (' + j.payments_pending + ' pending)' : '');
    h.className = 'health' + (j.ready && j.mqtt_connected && j.breaker === 'closed' ? '' : ' bad');
  } catch (e) {
    h.textContent = 'hub unreachable';
    h.className = 'health bad';
  }
}

/* ---- the live feed -------------------------------------------------------------- */

const live = {
  ctl: null,
  gen: 0,
  set(cls, text) {
    const e = document.getElementById('live');
    e.className = 'live ' + cls;
    e.textContent = text;
  },
  restart() {
    if (this.ctl) this.ctl.abort();
    this.run(++this.gen);
  },
  /* Reads the stream until it ends, then tries again 2 s later. */
  async run(gen) {
    while (gen === this.gen) {
      this.ctl = new AbortController();
      let polling = false;
      try {
        const resp = await fetch('/v1/events', {headers: authHeaders(), cache: 'no-store',
                                                signal: this.ctl.signal});
        if (resp.status === 401) {
          this.set('down', 'not logged in');
          showLogin('The hub asks for an access token.');
          return;
        }
        if (!resp.ok || !resp.body) throw new Error('status ' + resp.status);
        this.set('on', 'live');
        refresh(); /* whatever changed while the feed was away */
        await this.read(resp.body.getReader());
      } catch (e) {
        if (gen !== this.gen) return;
        polling = true;
      }
      /* without the feed, read the view now and then */
      this.set(polling ? 'down' : 'off', polling ? 'no live feed · polling' : 'reconnecting…');
      await new Promise(r => setTimeout(r, polling ? 5000 : 2000));
      if (polling) refresh();
    }
  },
  async read(reader) {
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buf += dec.decode(value, {stream: true}).replace(/\r\n?/g, '\n');
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        this.block(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
  },
  block(text) {
    let event = 'message';
    const data = [];
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (event === 'lost') { refreshSoon(); return; }
    if (!data.length) return;
    let ev;
    try { ev = JSON.parse(data.join('\n')); } catch (e) { return; }
    onEvent(ev);
  },
};

function onEvent(ev) {
  if (ev.type === 'notify') {
    if (ev.kind === 'alert') alertsAdd(ev);
    const change = ev.kind === 'alert' ? 'alert ' + ev.to + ' on ' + ev.id :
      ev.kind + ' ' + ev.id + ' ' + (ev.from ? ev.from + ' → ' : '') + ev.to;
    const last = document.getElementById('last-event');
    last.replaceChildren('Last change: ' + change.replace(/_/g, ' ') + ' · ', when(ev.at_ms || Date.now()));
  }
  refreshSoon();
}

/* "3 min ago" stays true while the page is open */
function tick() {
  for (const t of document.querySelectorAll('time.ago')) t.textContent = ago(Number(t.dataset.ms));
}

window.addEventListener('hashchange', show);
window.addEventListener('DOMContentLoaded', () => {
  setupLogin();
  alertsCount();
  show();
  health();
  setInterval(health, 10000);
  setInterval(tick, 15000);
  live.restart();
});
