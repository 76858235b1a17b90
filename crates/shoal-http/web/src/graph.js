// The operator graph: laid out once by dagre (left to right), its numbers
// updated in place every second.
import dagre from '@dagrejs/dagre';
import { svg, rate, percent, duration, count, bytes } from './format.js';
import { BACKPRESSURE_BAD } from './problems.js';

const NODE_W = 200;
const NODE_H = 86;

export class GraphView {
  /**
   * @param {SVGSVGElement} root
   * @param {object} graph GET /api/v1/job/graph
   */
  constructor(root, graph) {
    this.root = root;
    this.nodes = new Map();
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'LR', nodesep: 28, ranksep: 70, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of graph.nodes) g.setNode(n.id, { width: NODE_W, height: NODE_H });
    for (const e of graph.edges) g.setEdge(e.from, e.to, { label: e.partitioning, width: 90, height: 14 });
    dagre.layout(g);
    const { width, height } = g.graph();
    root.setAttribute('viewBox', `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`);
    root.style.maxHeight = `${Math.max(220, Math.ceil(height))}px`;
    root.replaceChildren(
      svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))),
    );
    for (const e of graph.edges) {
      const pts = g.edge(e.from, e.to).points;
      const d = pts.map((p, i) => `${i ? 'L' : 'M'} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ');
      const mid = pts[Math.floor(pts.length / 2)];
      root.append(
        svg('g', { class: 'edge', 'data-edge': `${e.from}->${e.to}` },
          svg('path', { d, 'marker-end': 'url(#arrow)' }),
          svg('text', { x: mid.x, y: mid.y - 4, 'text-anchor': 'middle', class: 'edge-label' }, e.partitioning)),
      );
    }
    for (const n of graph.nodes) {
      const { x, y } = g.node(n.id);
      const left = x - NODE_W / 2;
      const top = y - NODE_H / 2;
      const rateText = svg('text', { x: left + 10, y: top + 44, class: 'node-rate' }, '–');
      const bpBar = svg('rect', { x: left + 10, y: top + 54, width: 0, height: 6, class: 'bp-bar' });
      const bpText = svg('text', { x: left + NODE_W - 10, y: top + 60, 'text-anchor': 'end', class: 'node-small' }, 'bp –');
      const wmText = svg('text', { x: left + 10, y: top + 77, class: 'node-small' }, '');
      const deadText = svg('text', { x: left + NODE_W - 10, y: top + 18, 'text-anchor': 'end', class: 'node-dead' }, '');
      const box = svg('rect', { x: left, y: top, width: NODE_W, height: NODE_H, rx: 6, class: 'node-box' });
      const title = svg('title', {}, `${n.id} (${n.kind} × ${n.parallelism})\n${n.detail}`);
      const group = svg('g', { class: `node role-${n.role}`, 'data-node': n.id },
        title,
        box,
        svg('text', { x: left + 10, y: top + 18, class: 'node-id' }, n.id),
        svg('text', { x: left + 10, y: top + 31, class: 'node-kind' }, `${n.kind} × ${n.parallelism}`),
        rateText,
        svg('rect', { x: left + 10, y: top + 54, width: NODE_W - 70, height: 6, class: 'bp-track' }),
        bpBar, bpText, wmText, deadText);
      root.append(group);
      const head = `${n.id} (${n.kind} × ${n.parallelism})\n${n.detail}`
        + (n.state ? `\nstate: ${n.state.describe}` : '');
      const stateText = n.state
        ? svg('text', { x: left + NODE_W - 10, y: top + 31, 'text-anchor': 'end', class: 'node-state', 'data-state': n.state.sharding }, '')
        : null;
      if (stateText) group.append(stateText);
      this.nodes.set(n.id, { group, box, title, head, rateText, bpBar, bpText, wmText, deadText, stateText, sharding: n.state?.sharding, role: n.role });
    }
  }

  /** Update every node's numbers from GET /api/v1/job. */
  update(job) {
    const now = Date.now();
    for (const s of job.nodes) {
      const v = this.nodes.get(s.id);
      if (!v) continue;
      const r = v.role === 'source' ? s.records_out_per_s : s.records_in_per_s;
      v.rateText.textContent = `${rate(r)}  ·  ${count(v.role === 'source' ? s.records_out : s.records_in)} in all`;
      v.bpBar.setAttribute('width', ((NODE_W - 70) * Math.min(1, s.backpressure)).toFixed(1));
      v.bpText.textContent = `bp ${percent(s.backpressure)}`;
      v.wmText.textContent = s.waiting
        ? `WAITING ${duration(s.waiting_ms)}: ${s.waiting.slice(0, 40)}`
        : s.watermark_ms === null ? 'no event time' : `watermark delay ${duration(now - s.watermark_ms)}`;
      v.deadText.textContent = s.dead_letters ? `✉ ${count(s.dead_letters)}` : '';
      if (v.stateText) {
        // Keyed state: entries held now, and how it is split (per source
        // partition, following partitions between processes, or per instance).
        v.stateText.textContent = `${count(s.state_entries)} in state · ${v.sharding === 'partition' ? 'per partition' : 'per instance'}`;
      }
      // Hover: the node's instances, to spot a skewed one.
      v.title.textContent = [
        v.head,
        `state entries ${count(s.state_entries)} (peak ${count(s.state_peak)}), ${bytes(s.state_bytes)} in the last checkpoint`,
        ...s.instances.map((i) =>
          `#${i.instance}: in ${count(i.records_in)} (${bytes(i.bytes_in)}), out ${count(i.records_out)} (${bytes(i.bytes_out)}), blocked ${duration(i.blocked_ms)}`),
      ].join('\n');
      const level = s.waiting || s.backpressure >= BACKPRESSURE_BAD ? 'bad' : s.backpressure >= 0.1 ? 'warn' : 'ok';
      v.group.setAttribute('data-level', level);
      v.group.setAttribute('data-rate', String(r));
    }
  }
}
