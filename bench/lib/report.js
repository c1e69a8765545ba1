// Medians, ranges, ratios and the text table.

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function summarize(values) {
  const v = values.filter((x) => Number.isFinite(x));
  return { median: median(v), min: v.length ? Math.min(...v) : Number.NaN, max: v.length ? Math.max(...v) : Number.NaN, n: v.length, values };
}

const seconds = (ms) => (ms % 1000 === 0 ? String(ms / 1000) : (ms / 1000).toFixed(1));

/** The figures shown for each scenario kind: key into the flattened result, label, unit and which way is better. */
export function figuresFor(kind, params) {
  switch (kind) {
    case 'throughput':
      return [
        { key: 'deliveredPerSec', label: 'msgs/s delivered', unit: 'int', better: 'higher' },
        ...(params.qos > 0 ? [{ key: 'ackedPerSec', label: 'PUBLISHes acknowledged/s', unit: 'int', better: 'higher' }] : []),
        { key: 'brokerCpu', label: 'broker CPU (1 = one core)', unit: 'cores', better: 'info' },
        // Main thread running + runnable but waiting for its core: near 1 = it had work all the time (at capacity).
        { key: 'brokerBusy', label: 'broker busy (main thread running or waiting for its core)', unit: 'cores', better: 'info' },
        { key: 'deliveredPerCpuSec', label: 'msgs delivered per broker CPU-second', unit: 'int', better: 'higher' },
      ];
    case 'latency':
      return [
        { key: 'p50Us', label: 'latency p50', unit: 'us', better: 'lower' },
        { key: 'p99Us', label: 'latency p99', unit: 'us', better: 'lower' },
        { key: 'p999Us', label: 'latency p99.9', unit: 'us', better: 'lower' },
      ];
    case 'connections':
      return [
        { key: 'connPerSec', label: 'connections/s', unit: 'dec', better: 'higher' },
        { key: 'p99Ms', label: 'connect p99', unit: 'ms', better: 'lower' },
        { key: 'brokerCpuMsPerConn', label: 'broker CPU per connection', unit: 'ms', better: 'lower' },
      ];
    case 'memory':
      return [
        { key: 'idleRssKiB', label: `RSS idle, ${seconds(params.settleMs)} s after start`, unit: 'mib', better: 'lower' },
        { key: 'settledRssKiB', label: `RSS idle, ${seconds(params.settleMs + params.idleMs)} s after start`, unit: 'mib', better: 'lower' },
        ...params.steps.flatMap((n) => [
          { key: `rssKiB@${n}`, label: `RSS with ${n} TLS clients`, unit: 'mib', better: 'lower' },
          { key: `kibPerClient@${n}`, label: `KiB per client (${n})`, unit: 'dec', better: 'lower' },
        ]),
        { key: 'brokerCpuMsPerConn', label: 'broker CPU per connection', unit: 'ms', better: 'lower' },
      ];
    default:
      return [];
  }
}

/** Memory steps become flat keys so that every figure is a number on the result. */
export function flatten(kind, result) {
  if (kind === 'throughput') {
    return {
      ...result,
      deliveredPerCpuSec: result.brokerCpu > 0 ? result.deliveredPerSec / result.brokerCpu : Number.NaN,
    };
  }
  if (kind !== 'memory') return result;
  const flat = { ...result };
  for (const s of result.steps) {
    flat[`rssKiB@${s.target}`] = s.rssKiB;
    flat[`kibPerClient@${s.target}`] = s.kibPerClient;
    flat[`clients@${s.target}`] = s.clients;
  }
  return flat;
}

export function fmt(value, unit) {
  if (!Number.isFinite(value)) return 'n/a';
  switch (unit) {
    case 'int':
      return Math.round(value).toLocaleString('en-US');
    case 'cores':
      return value.toFixed(2);
    case 'us':
      return value >= 10_000 ? `${(value / 1000).toFixed(1)} ms` : value >= 1000 ? `${(value / 1000).toFixed(2)} ms` : `${Math.round(value)} us`;
    case 'ms':
      return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
    case 'mib':
      return `${(value / 1024).toFixed(1)} MiB`;
    case 'pct':
      return `${Math.round(value * 100)}%`;
    default:
      return value >= 100 ? value.toFixed(0) : value.toFixed(1);
  }
}

function cell(s, unit) {
  if (s.n === 0) return 'n/a';
  if (s.n === 1) return fmt(s.median, unit);
  return `${fmt(s.median, unit)} (${fmt(s.min, unit)}..${fmt(s.max, unit)})`;
}

function pad(text, width) {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

/** Rows of strings -> aligned text. */
function align(rows) {
  const widths = [];
  for (const row of rows) row.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  return rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : pad(c, widths[i]))).join('  ').trimEnd()).join('\n');
}

/** The table: one block per scenario; a column per broker; ratio of every other broker to the baseline. */
export function table(report) {
  const { brokers, baseline } = report;
  const others = brokers.filter((b) => b !== baseline);
  const head = ['figure', ...brokers, ...others.map((b) => `${b}/${baseline}`)];
  const rows = [head];
  for (const sc of report.scenarios) {
    rows.push([`== ${sc.title}`]);
    for (const f of sc.figures) {
      const s = sc.summary[f.key];
      if (s === undefined) continue;
      const ratios = others.map((b) => {
        const r = s.ratio?.[b];
        if (!Number.isFinite(r)) return 'n/a';
        const mark = f.better === 'info' ? '' : (f.better === 'higher') === r >= 1 ? ' (better)' : ' (worse)';
        return `${r.toFixed(2)}x${mark}`;
      });
      rows.push([`  ${f.label}`, ...brokers.map((b) => cell(s[b], f.unit)), ...ratios]);
    }
    const gen = brokers.map((b) => {
      const g = sc.generatorCpu[b];
      return Number.isFinite(g) ? `${fmt(g, 'pct')}${g > 0.8 ? ' (!)' : ''}` : 'n/a';
    });
    rows.push(['  generator CPU (max of runs)', ...gen]);
    const bg = brokers.map((b) => (Number.isFinite(sc.backgroundCpu[b]) ? fmt(sc.backgroundCpu[b], 'cores') : 'n/a'));
    rows.push(['  other processes, cores (median)', ...bg]);
    if (sc.delivery !== undefined) {
      rows.push(['  lost / dups (sum of runs)', ...brokers.map((b) => {
        const d = sc.delivery[b];
        return d === undefined ? 'n/a' : `${d.lost} / ${d.dups} of ${d.expected.toLocaleString('en-US')}`;
      })]);
    }
    if (sc.params.subscriptionId > 0) {
      // Every delivery must carry the subscriber's subscription identifier (MQTT 5).
      rows.push(['  subscription identifier on deliveries', ...brokers.map((b) => {
        const runs = sc.results[b] ?? [];
        if (runs.length === 0) return 'n/a';
        const missing = runs.reduce((a, r) => a + r.subIdMissing, 0);
        const wrong = runs.reduce((a, r) => a + r.subIdWrong, 0);
        const total = runs.reduce((a, r) => a + r.delivered, 0);
        return missing + wrong === 0 ? 'on all' : `(!) missing ${missing}, wrong ${wrong} of ${total.toLocaleString('en-US')}`;
      })]);
    }
    if (sc.failures > 0) rows.push(['  FAILED runs', ...brokers.map((b) => String(sc.failed[b] ?? 0))]);
  }
  return align(rows);
}
