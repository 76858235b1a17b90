// The dashboard of one running Shoal job: reads the job's HTTP API every
// second and redraws in place (no page reload).
import './style.css';
import { GraphView } from './graph.js';
import { problems, LAG_WINDOW } from './problems.js';
import { renderThroughput, renderLag, renderCheckpoints, renderDead } from './panels.js';
import { el, count, duration } from './format.js';

const REFRESH_MS = 1000;
/** Samples of totals kept for the problem rules (one a second). */
const KEEP = 60;

const $ = (id) => document.getElementById(id);

async function getJson(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 3000);
  try {
    const r = await fetch(path, { signal: ctl.signal, cache: 'no-store' });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return await r.json();
  } finally {
    clearTimeout(timer);
  }
}

const history = { lag: [], dead: [], abandoned: [] };
function remember(key, v) {
  history[key].push(v);
  if (history[key].length > KEEP) history[key].shift();
}

let graph = null;
let view = null;
let refreshes = 0;

function showProblems(list) {
  const root = $('problems');
  if (list.length === 0) {
    root.className = 'problems ok';
    root.replaceChildren(el('span', {}, 'No problems seen: no backpressure, lag not growing, checkpoints completing, no new dead letters.'));
    return;
  }
  root.className = `problems ${list.some((p) => p.level === 'bad') ? 'bad' : 'warn'}`;
  root.replaceChildren(...list.map((p) => el('div', { class: `problem ${p.level}` }, p.text)));
}

async function refresh() {
  if (!graph) {
    graph = await getJson('./api/v1/job/graph');
    $('pipeline').textContent = graph.pipeline;
    document.title = `${graph.pipeline} · shoal`;
    view = new GraphView($('graph'), graph);
  }
  const [job, cps, parts, dead] = await Promise.all([
    getJson('./api/v1/job'),
    getJson('./api/v1/job/checkpoints'),
    getJson('./api/v1/job/partitions'),
    getJson('./api/v1/job/dead-letters?limit=12'),
  ]);
  refreshes += 1;
  const state = $('state');
  state.textContent = job.state;
  state.className = `state state-${job.state}`;
  $('uptime').textContent = duration(job.uptime_ms);
  $('source-records').textContent = count(job.source_records);
  $('sink-records').textContent = count(job.sink_records);
  $('total-lag').textContent = count(job.lag);
  $('dead-total').textContent = count(job.dead_letters);
  const lastCp = cps.history.filter((c) => c.status === 'completed').at(-1);
  $('last-checkpoint').textContent = !cps.enabled
    ? 'off'
    : lastCp ? `#${lastCp.id}, ${duration(Date.now() - lastCp.started_ms - lastCp.duration_ms)} ago` : 'none yet';
  remember('lag', job.lag);
  remember('dead', job.dead_letters);
  remember('abandoned', job.checkpoints_abandoned);
  view.update(job);
  renderThroughput($('throughput'), job);
  renderLag($('lag'), parts);
  renderCheckpoints($('checkpoint-timeline'), $('checkpoint-latest'), cps);
  renderDead($('dead'), dead);
  showProblems(problems(job, graph, cps, { ...history, lag: history.lag.slice(-LAG_WINDOW) }));
  document.body.dataset.refreshes = String(refreshes);
}

async function loop() {
  try {
    await refresh();
    document.body.classList.remove('disconnected');
  } catch (e) {
    document.body.classList.add('disconnected');
    const state = $('state');
    state.textContent = 'unreachable';
    state.className = 'state state-failed';
    showProblems([{ level: 'bad', text: `The job's API does not answer (${e.message}): the process may have ended.` }]);
  }
  setTimeout(loop, REFRESH_MS);
}

loop();
