// What an on-call engineer must see first: the problems in the job's
// numbers, worst first. Pure: status and history in, a list out.

/** Backpressure at or above this share of time is a problem. */
export const BACKPRESSURE_BAD = 0.5;
/** A running checkpointed job with no checkpoint for this long is a problem. */
export const CHECKPOINT_STALE_MS = 60_000;
/** Samples (seconds) over which growing lag is judged. */
export const LAG_WINDOW = 15;

/**
 * The problems to show.
 * @param {object} job        GET /api/v1/job
 * @param {object} graph      GET /api/v1/job/graph
 * @param {object} cps        GET /api/v1/job/checkpoints
 * @param {object} history    { lag: number[], dead: number[], abandoned: number[] } one sample a second
 * @returns {{level: 'bad'|'warn', text: string}[]}
 */
export function problems(job, graph, cps, history) {
  const out = [];
  if (job.state === 'failed') {
    out.push({ level: 'bad', text: `Job failed: ${job.error ?? 'unknown error'}` });
  }
  // A node waiting on an outside system holds everything back (and
  // checkpoints wait for it).
  for (const n of job.nodes) {
    if (n.waiting) {
      out.push({ level: 'bad', text: `${n.id} is waiting ${Math.round((n.waiting_ms ?? 0) / 1000)} s — ${n.waiting}` });
    }
  }
  // Backpressure: name the node that holds the others back (the first one
  // downstream of a backpressured node that is not backpressured itself).
  const byId = new Map(job.nodes.map((n) => [n.id, n]));
  for (const n of job.nodes) {
    if (n.backpressure < BACKPRESSURE_BAD) continue;
    const slow = graph.edges
      .filter((e) => e.from === n.id)
      .map((e) => byId.get(e.to))
      .filter((d) => d && d.backpressure < BACKPRESSURE_BAD)
      .map((d) => d.id);
    const who = slow.length ? `; the bottleneck is downstream: ${slow.join(', ')}` : '';
    out.push({
      level: 'warn',
      text: `Backpressure: ${n.id} waits on full channels ${Math.round(n.backpressure * 100)}% of the time${who}`,
    });
  }
  const lag = history.lag;
  if (lag.length >= LAG_WINDOW) {
    const recent = lag.slice(-LAG_WINDOW);
    let rising = true;
    for (let i = 1; i < recent.length; i++) if (recent[i] < recent[i - 1]) rising = false;
    const grew = recent[recent.length - 1] - recent[0];
    if (rising && grew > 0) {
      out.push({ level: 'warn', text: `Consumer lag growing: +${grew} records in ${LAG_WINDOW} s (now ${recent[recent.length - 1]})` });
    }
  }
  if (cps.enabled) {
    const ab = history.abandoned;
    const newAbandoned = ab.length > 1 ? ab[ab.length - 1] - ab[0] : 0;
    if (newAbandoned > 0) {
      out.push({ level: 'bad', text: `Checkpoints failing: ${newAbandoned} abandoned in the last ${ab.length} s (${cps.abandoned} in all)` });
    }
    const last = cps.history.filter((c) => c.status === 'completed').at(-1);
    const since = last ? Date.now() - (last.started_ms + last.duration_ms) : job.uptime_ms;
    if (job.state === 'running' && since > CHECKPOINT_STALE_MS) {
      out.push({ level: 'bad', text: `No checkpoint completed for ${Math.round(since / 1000)} s` });
    }
  }
  const dead = history.dead;
  if (dead.length > 1 && dead[dead.length - 1] > dead[0]) {
    out.push({ level: 'warn', text: `Dead letters: +${dead[dead.length - 1] - dead[0]} in the last ${dead.length} s (${job.dead_letters} in all)` });
  }
  return out;
}
