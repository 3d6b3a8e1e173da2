/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for the tests
 * that scrape `/metrics`: it throws, naming the line, on anything a Prometheus server would
 * refuse or misread — a sample without its family's `# HELP` and `# TYPE` lines before it, a
 * family declared twice, a sample name that does not belong to its family's type (a
 * histogram's `_bucket` / `_sum` / `_count`), bad label syntax or escapes, a value that is no
 * number, a histogram whose buckets are not cumulative or whose `+Inf` bucket is not its count.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(raw: string, where: string): number {
  if (raw === "+Inf") return Number.POSITIVE_INFINITY;
  if (raw === "-Inf") return Number.NEGATIVE_INFINITY;
  if (raw === "NaN") return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) throw new Error(`${where}: "${raw}" is not a sample value`);
  return Number(raw);
}

function parseLabels(s: string, where: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1; // after "{"
  for (;;) {
    while (s[i] === " ") i++;
    if (s[i] === "}") return { labels, rest: s.slice(i + 1) };
    const eq = s.indexOf("=", i);
    if (eq < 0) throw new Error(`${where}: a label without "="`);
    const name = s.slice(i, eq).trim();
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name "${name}"`);
    if (name in labels) throw new Error(`${where}: label "${name}" twice`);
    if (s[eq + 1] !== '"') throw new Error(`${where}: label ${name}'s value is not quoted`);
    let j = eq + 2;
    let value = "";
    for (; j < s.length && s[j] !== '"'; j++) {
      if (s[j] === "\\") {
        const e = s[++j];
        if (e === "n") value += "\n";
        else if (e === "\\" || e === '"') value += e;
        else throw new Error(`${where}: bad escape \\${e} in label ${name}`);
      } else value += s[j];
    }
    if (s[j] !== '"') throw new Error(`${where}: label ${name}'s value is not closed`);
    labels[name] = value;
    i = j + 1;
    if (s[i] === ",") i++;
    else if (s[i] !== "}") throw new Error(`${where}: expected "," or "}" after label ${name}`);
  }
}

/** The families of an exposition, by name; throws on the first thing that is not valid. */
export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const help = new Map<string, string>();
  let current: Family | undefined;
  const lines = text.split("\n");
  if (text.length && !text.endsWith("\n")) throw new Error("the exposition does not end with a line break");
  lines.forEach((line, n) => {
    const where = `line ${n + 1} (${JSON.stringify(line.slice(0, 80))})`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      if (kind === "HELP") {
        if (help.has(name)) throw new Error(`${where}: HELP of ${name} twice`);
        help.set(name, rest.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c)));
        return;
      }
      if (families.has(name)) throw new Error(`${where}: TYPE of ${name} twice`);
      if (!TYPES.has(rest)) throw new Error(`${where}: unknown type "${rest}"`);
      if (!help.has(name)) throw new Error(`${where}: TYPE of ${name} without its HELP line first`);
      current = { name, help: help.get(name)!, type: rest as Family["type"], samples: [] };
      families.set(name, current);
      return;
    }
    const brace = line.indexOf("{");
    const space = line.indexOf(" ");
    const cut = brace >= 0 && (space < 0 || brace < space) ? brace : space;
    if (cut <= 0) throw new Error(`${where}: not a sample`);
    const name = line.slice(0, cut);
    if (!NAME.test(name)) throw new Error(`${where}: bad sample name`);
    let labels: Record<string, string> = {};
    let rest = line.slice(cut);
    if (rest.startsWith("{")) ({ labels, rest } = parseLabels(rest, where));
    const parts = rest.trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2 || parts[0] === "") throw new Error(`${where}: expected a value (and maybe a timestamp)`);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: bad timestamp`);
    const value = parseValue(parts[0]!, where);
    if (!current) throw new Error(`${where}: a sample before any TYPE line`);
    const f = current;
    const allowed = f.type === "histogram" ? [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`] : f.type === "summary" ? [f.name, `${f.name}_sum`, `${f.name}_count`] : [f.name];
    if (!allowed.includes(name)) throw new Error(`${where}: sample ${name} does not belong to ${f.type} ${f.name}`);
    if (name === `${f.name}_bucket` && labels.le === undefined) throw new Error(`${where}: a bucket without "le"`);
    f.samples.push({ name, labels, value });
  });
  for (const [name] of help) if (!families.has(name)) throw new Error(`HELP of ${name} without a TYPE line`);
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

function key(labels: Record<string, string>, drop: string[] = []): string {
  return JSON.stringify(Object.entries(labels).filter(([k]) => !drop.includes(k)).sort(([a], [b]) => a.localeCompare(b)));
}

function checkHistogram(f: Family): void {
  const series = new Map<string, Sample[]>();
  for (const s of f.samples.filter((x) => x.name.endsWith("_bucket"))) {
    const k = key(s.labels, ["le"]);
    series.set(k, [...(series.get(k) ?? []), s]);
  }
  for (const [k, buckets] of series) {
    const les = buckets.map((b) => parseValue(b.labels.le!, `${f.name} le`));
    for (let i = 1; i < buckets.length; i++) {
      if (!(les[i]! > les[i - 1]!)) throw new Error(`${f.name}${k}: buckets not in ascending "le" order`);
      if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${f.name}${k}: buckets not cumulative`);
    }
    if (les.at(-1) !== Number.POSITIVE_INFINITY) throw new Error(`${f.name}${k}: no +Inf bucket`);
    const count = f.samples.find((s) => s.name === `${f.name}_count` && key(s.labels) === k);
    if (!count || count.value !== buckets.at(-1)!.value) throw new Error(`${f.name}${k}: _count is not the +Inf bucket`);
    if (!f.samples.some((s) => s.name === `${f.name}_sum` && key(s.labels) === k)) throw new Error(`${f.name}${k}: no _sum`);
  }
}

/** The value of the sample `name` whose labels are exactly `labels` (0 when there is none: a counter never moved). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  return findSample(families, name, labels)?.value ?? 0;
}

/** The sample `name` whose labels are exactly `labels`, if any. */
export function findSample(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): Sample | undefined {
  const k = key(labels);
  for (const f of families.values()) for (const s of f.samples) if (s.name === name && key(s.labels) === k) return s;
  return undefined;
}

/** Every sample named `name`. */
export function samplesOf(families: Map<string, Family>, name: string): Sample[] {
  return [...families.values()].flatMap((f) => f.samples.filter((s) => s.name === name));
}
