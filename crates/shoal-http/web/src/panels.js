// The side panels: throughput sparklines, lag per partition, the
// checkpoint timeline and the newest dead letters.
import { el, svg, rate, count, duration, bytes, sparkPoints } from './format.js';

const SPARK_W = 220;
const SPARK_H = 36;

/** One sparkline per source and sink. */
export function renderThroughput(root, job) {
  const rows = job.nodes
    .filter((n) => n.role === 'source' || n.role === 'sink')
    .map((n) => {
      const now = n.role === 'source' ? n.records_out_per_s : n.records_in_per_s;
      const hist = n.throughput_history;
      return el('div', { class: 'spark-row', 'data-spark': n.id },
        el('span', { class: `spark-name role-${n.role}` }, n.id),
        svg('svg', { class: 'spark', viewBox: `0 0 ${SPARK_W} ${SPARK_H}`, preserveAspectRatio: 'none' },
          svg('polyline', { points: sparkPoints(hist, SPARK_W, SPARK_H) })),
        el('span', { class: 'spark-now' }, rate(now)));
    });
  root.replaceChildren(...rows);
}

/** Per source, per partition: owner, position, end and lag as a bar. */
export function renderLag(root, parts) {
  const sources = parts.sources.filter((s) => s.partitions.length > 0);
  if (sources.length === 0) {
    root.replaceChildren(el('p', { class: 'note' }, 'No partitioned source reports progress (generators and files have no lag).'));
    return;
  }
  const blocks = sources.map((s) => {
    const max = Math.max(1, ...s.partitions.map((p) => p.lag));
    const rows = s.partitions.map((p) =>
      el('tr', { 'data-partition': `${s.node}/${p.partition}`, class: p.lag > 0 ? 'behind' : '' },
        el('td', {}, String(p.partition)),
        el('td', {}, `#${p.instance}`),
        el('td', { class: 'num' }, count(p.position)),
        el('td', { class: 'num' }, count(p.end)),
        el('td', { class: 'num lag-num' }, count(p.lag)),
        el('td', { class: 'bar-cell' }, el('div', { class: 'bar', style: `width:${((p.lag / max) * 100).toFixed(1)}%` }))));
    return el('div', { class: 'lag-source' },
      el('h3', {}, `${s.node} `, el('small', {}, `lag ${count(s.lag)}`)),
      el('table', { class: 'lag-table' },
        el('thead', {}, el('tr', {}, ...['partition', 'member', 'position', 'end', 'lag', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, ...rows)));
  });
  root.replaceChildren(...blocks);
}

/** The newest checkpoints as bars (height = duration) and the latest's details. */
export function renderCheckpoints(svgRoot, note, cps) {
  if (!cps.enabled) {
    svgRoot.replaceChildren();
    note.replaceChildren(el('p', { class: 'note' }, 'This pipeline takes no checkpoints (no `checkpoint:` section).'));
    return;
  }
  const shown = cps.history.slice(-60);
  const max = Math.max(1, ...shown.map((c) => c.duration_ms));
  const w = 600 / 60;
  svgRoot.replaceChildren(
    ...shown.map((c, i) => {
      const h = Math.max(2, (c.duration_ms / max) * 84);
      return svg('rect', {
        x: i * w + 1, y: 88 - h, width: w - 2, height: h,
        class: `cp cp-${c.status}`, 'data-checkpoint': c.id,
      }, svg('title', {}, `#${c.id} ${c.status} · ${duration(c.duration_ms)} · ${bytes(c.state_bytes)}`));
    }),
  );
  const last = shown.at(-1);
  if (!last) {
    note.replaceChildren(el('p', { class: 'note' }, 'No checkpoint yet.'));
    return;
  }
  const slowest = Object.entries(last.alignment_ms ?? {}).sort((a, b) => b[1] - a[1])[0];
  note.replaceChildren(
    el('p', {},
      el('b', {}, `#${last.id} ${last.status}`),
      ` · ${duration(last.duration_ms)} · ${bytes(last.state_bytes)} of state`,
      slowest ? ` · slowest alignment ${slowest[0]} ${duration(slowest[1])}` : '',
      ` · ${duration(Date.now() - last.started_ms)} ago`),
    el('p', { class: 'note' }, `${cps.completed} completed, ${cps.abandoned} abandoned${cps.restored_from ? `, restored from #${cps.restored_from}` : ''}`));
}

/** Counts per node and the newest letters. */
export function renderDead(root, dead) {
  if (dead.total === 0) {
    root.replaceChildren(el('p', { class: 'note ok' }, 'None.'));
    return;
  }
  const chips = Object.entries(dead.by_node)
    .filter(([, n]) => n > 0)
    .map(([node, n]) => el('span', { class: 'chip', 'data-dead-node': node }, `${node}: ${count(n)}`));
  const rows = dead.latest.map((d) =>
    el('tr', {},
      el('td', {}, d.node),
      el('td', {}, d.partition === null ? '' : `p${d.partition}${d.offset === null ? '' : `@${d.offset}`}`),
      el('td', { class: 'reason' }, d.reason),
      el('td', { class: 'record' }, d.record.length > 160 ? `${d.record.slice(0, 160)}…` : d.record)));
  root.replaceChildren(
    el('div', { class: 'chips' }, el('b', {}, `${count(dead.total)} in all `), ...chips),
    el('table', { class: 'dead-table' },
      el('thead', {}, el('tr', {}, ...['node', 'from', 'reason', 'record'].map((h) => el('th', {}, h)))),
      el('tbody', {}, ...rows)));
}
