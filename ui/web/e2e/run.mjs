// End-to-end test of the web UI in headless Chromium (playwright-core driving Debian's
// /usr/bin/chromium). Run by tests/ui_browser.rs against a server fed by the simulator
// with a fault; by hand:
//
//   node ui/web/e2e/run.mjs --url http://127.0.0.1:7700 --out /tmp/ui-e2e --service funding
//
// The walk: service map (faulty hop highlighted) → its trace evidence → the erroring
// span of the faulty service → that span's log lines → a log search → a PromQL query →
// a SQL query → a trace search. Every view is screenshotted into --out and checked for
// content (PNG size, distinct colours, the expected rows in the DOM). Any console
// error, page error, failed request or HTTP error fails the run. The time until the map
// has drawn its nodes is measured with the performance API (first load and reloads).
// Prints one line `E2E-SUMMARY <json>` and writes <out>/summary.json; exit 1 on failure.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .join(" ")
    .split(/\s*--/)
    .filter(Boolean)
    .map((kv) => {
      const [k, ...v] = kv.split(" ");
      return [k, v.join(" ")];
    }),
);
const base = (args.url ?? "http://127.0.0.1:7700").replace(/\/$/, "");
const out = args.out ?? mkdtempSync(join(tmpdir(), "sightline-ui-e2e-"));
const faulty = args.service ?? "funding";
const reloads = Number(args.reloads ?? 3);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
mkdirSync(out, { recursive: true });

const steps = [];
/** Waits on the Logs, Metrics and SQL views (slower queries get more). */
const VIEW_TIMEOUT = 20_000;
const problems = [];
const timings = {};

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    steps.push({ name, ok: true, ms: Date.now() - started });
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    steps.push({ name, ok: false, ms: Date.now() - started, error: String(error?.message ?? error).split("\n")[0] });
    console.log(`FAIL ${name}: ${String(error?.message ?? error).split("\n").slice(0, 3).join(" | ")}`);
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// `launch` gives Chromium a new empty profile (a temporary user-data-dir) and removes it.
const browser = await chromium.launch({
  executablePath,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);

page.on("console", (message) => {
  if (message.type() === "error") problems.push(`console error on ${page.url()}: ${message.text()}`);
});
page.on("pageerror", (error) => problems.push(`page error on ${page.url()}: ${error.message}`));
page.on("requestfailed", (request) => {
  const failure = request.failure()?.errorText ?? "";
  // A view cancels its superseded requests (AbortController) and navigation cancels
  // the previous page's: those are not failures.
  if (failure.includes("ERR_ABORTED")) return;
  problems.push(`request failed: ${request.method()} ${request.url()}: ${failure}`);
});
page.on("response", (response) => {
  if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`);
});

/** Saves a screenshot and checks it has content: size and distinct colours. */
async function screenshot(name) {
  const path = join(out, `${name}.png`);
  const png = await page.screenshot({ path, fullPage: false });
  const colours = await distinctColours(png);
  expect(png.length > 8_000, `${name}.png is only ${png.length} bytes`);
  expect(colours >= 16, `${name}.png has ${colours} distinct colours: blank?`);
  return { path, bytes: png.length, colours };
}

/** Distinct colours of a PNG (quantised to 4 bits per channel), decoded by the browser. */
async function distinctColours(png) {
  const scratch = await context.newPage();
  try {
    return await scratch.evaluate(async (b64) => {
      const blob = await (await fetch(`data:image/png;base64,${b64}`)).blob();
      const bitmap = await createImageBitmap(blob);
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const g = canvas.getContext("2d");
      g.drawImage(bitmap, 0, 0);
      const data = g.getImageData(0, 0, bitmap.width, bitmap.height).data;
      const seen = new Set();
      for (let i = 0; i < data.length; i += 4 * 7) {
        seen.add(((data[i] >> 4) << 8) | ((data[i + 1] >> 4) << 4) | (data[i + 2] >> 4));
      }
      return seen.size;
    }, png.toString("base64"));
  } finally {
    await scratch.close();
  }
}

/** Milliseconds from navigation start to first contentful paint and to the drawn map. */
async function mapTimings() {
  await page.waitForSelector('[data-testid="service-map"][data-rendered]', { timeout: 60_000 });
  return page.evaluate(() => {
    const paint = performance.getEntriesByName("first-contentful-paint")[0];
    const map = performance.getEntriesByName("sightline:map-rendered")[0];
    // The first service-graph answer: the window's (the map is drawn from it).
    const graph = performance.getEntriesByType("resource").find((r) => r.name.includes("/api/v1/service_graph"));
    return {
      first_contentful_paint_ms: paint ? Math.round(paint.startTime) : null,
      service_graph_answered_ms: graph ? Math.round(graph.responseEnd) : null,
      map_rendered_ms: map ? Math.round(map.startTime) : null,
      nodes: Number(document.querySelector('[data-testid="service-map"]')?.getAttribute("data-rendered") ?? 0),
    };
  });
}

const shots = {};
let traceHref = null;

await step("service map draws the fleet and highlights the faulty hop", async () => {
  await page.goto(`${base}/`);
  timings.first_load = await mapTimings();
  expect(timings.first_load.nodes >= 27, `map drew ${timings.first_load.nodes} nodes`);
  const nodes = await page.locator('[data-testid="map-node"]').count();
  expect(nodes >= 27, `${nodes} map-node rows`);
  expect((await page.locator('[data-testid="map-edge"]').count()) > 20, "too few map-edge rows");
  await page.waitForSelector('[data-testid="suspect"]', { timeout: 90_000 });
  const hop = page.locator(`[data-testid="map-edge"][data-callee="${faulty}"][data-suspect="true"]`);
  expect((await hop.count()) > 0, `no suspect edge into ${faulty}`);
  expect((await page.locator(`[data-testid="map-node"][data-service="${faulty}"][data-suspect="true"]`).count()) === 1, `${faulty} node is not a suspect`);
  const top = page.locator('[data-testid="suspect"]').first();
  expect((await top.getAttribute("data-callee")) === faulty, `top suspect is ${await top.getAttribute("data-callee")}`);
  await page.waitForSelector('[data-testid="suspects"][data-state="done"]', { timeout: 90_000 });
  // The hop's details open from its row (keyboard).
  await hop.first().focus();
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-testid="map-details"]');
  expect(page.url().includes("sel=edge"), `selection not in URL: ${page.url()}`);
  shots.map = await screenshot("map");
});

await step("service map first paint (reloads)", async () => {
  const runs = [];
  for (let i = 0; i < reloads; i++) {
    // Let the previous page's analysis finish first: its server work would otherwise
    // compete with the next load's.
    await page.waitForSelector('[data-testid="suspects"][data-state="done"]', { timeout: 90_000 });
    await page.goto(`${base}/ui/map`);
    runs.push(await mapTimings());
  }
  await page.waitForSelector('[data-testid="suspects"][data-state="done"]', { timeout: 90_000 });
  timings.reloads = runs;
  const sorted = runs.map((r) => r.map_rendered_ms).sort((a, b) => a - b);
  timings.map_rendered_median_ms = sorted[Math.floor(sorted.length / 2)];
});

await step("suspect evidence opens a trace whose erroring span is the faulty service", async () => {
  await page.goto(`${base}/`);
  const suspect = page.locator(`[data-testid="suspect"][data-callee="${faulty}"]`).first();
  await suspect.waitFor({ timeout: 90_000 });
  const kinds = await suspect.locator('[data-testid="evidence-link"]').evaluateAll((links) => links.map((a) => a.getAttribute("data-kind")));
  expect(kinds.includes("trace") && kinds.includes("logs"), `evidence kinds: ${kinds.join(",")}`);
  const link = suspect.locator('[data-testid="evidence-link"][data-kind="trace"]').first();
  traceHref = await link.getAttribute("href");
  await link.click();
  await page.waitForURL(/\/ui\/traces\?.*trace=/);
  await page.waitForSelector('[data-testid="waterfall"]');
  const failing = page.locator(`[data-testid="span-row"][data-service="${faulty}"][data-error="true"]`);
  expect((await failing.count()) > 0, `no erroring ${faulty} span in ${page.url()}`);
  expect((await page.locator('[data-testid="span-row"][data-critical="true"]').count()) > 0, "no critical path");
  await failing.first().click();
  await page.waitForSelector('[data-testid="span-details"]');
  expect(page.url().includes("span="), "span selection not in URL");
  shots.trace = await screenshot("trace");
});

await step("the erroring span's log lines", async () => {
  const link = page.locator('[data-testid="span-logs-link"]');
  const href = await link.getAttribute("href");
  expect(/trace=[0-9a-f]{32}/.test(href) && /span=[0-9a-f]{16}/.test(href), `span logs link ${href}`);
  await link.click();
  await page.waitForURL(/\/ui\/logs\?/);
  await page.waitForSelector('[data-testid="log-row"]', { timeout: VIEW_TIMEOUT });
  shots.span_logs = await screenshot("span-logs");
});

await step("log search", async () => {
  await page.goto(`${base}/ui/logs`);
  await page.fill('[data-testid="log-query"]', `{service_name="${faulty}"} |= "Exception"`, { timeout: VIEW_TIMEOUT });
  await page.click('[data-testid="log-run"]', { timeout: VIEW_TIMEOUT });
  // The rows of the page's first load stay on screen while the search runs: wait for
  // this search's answer, then check that every row is one it asked for.
  await page.waitForURL(/query=/, { timeout: VIEW_TIMEOUT });
  await page.waitForFunction(
    (service) => {
      const status = document.querySelector('[data-testid="log-status"]');
      const rows = [...document.querySelectorAll('[data-testid="log-row"]')];
      return status?.getAttribute("data-state") === "done" && rows.length > 0 && rows.every((r) => r.getAttribute("data-service") === service);
    },
    faulty,
    { timeout: VIEW_TIMEOUT },
  );
  await page.waitForSelector('[data-testid="log-histogram"]', { timeout: VIEW_TIMEOUT });
  const services = await page.locator('[data-testid="log-row"]').evaluateAll((rows) => rows.map((r) => r.getAttribute("data-service")));
  expect(services.length > 0, "no log rows");
  expect(services.every((s) => s === faulty), `rows from other services: ${[...new Set(services)].join(",")}`);
  const bodies = await page.locator('[data-testid="log-row"] .log-body').allInnerTexts();
  expect(bodies.length === services.length && bodies.every((b) => b.includes("Exception")), "a row without Exception");
  shots.logs = await screenshot("logs");
});

await step("PromQL query", async () => {
  await page.goto(`${base}/ui/metrics`);
  await page.fill('[data-testid="promql-input"]', "sum by (service) (rate(http_server_requests_seconds_count[5m]))", { timeout: VIEW_TIMEOUT });
  await page.click('[data-testid="promql-run"]', { timeout: VIEW_TIMEOUT });
  await page.waitForSelector('[data-testid="metrics-chart"]', { timeout: VIEW_TIMEOUT });
  await page.waitForTimeout(300);
  shots.metrics = await screenshot("metrics");
});

await step("SQL query", async () => {
  await page.goto(`${base}/ui/sql`);
  await page.fill('[data-testid="sql-input"]', "SELECT service, count(*) AS spans FROM spans GROUP BY service ORDER BY spans DESC", { timeout: VIEW_TIMEOUT });
  await page.click('[data-testid="sql-run"]', { timeout: VIEW_TIMEOUT });
  await page.waitForSelector('[data-testid="sql-grid"]', { timeout: VIEW_TIMEOUT });
  expect((await page.locator('[data-testid="sql-grid"]').innerText()).includes(faulty), `SQL grid lacks ${faulty}`);
  shots.sql = await screenshot("sql");
});

await step("trace search (form, scatter, rows, keyboard)", async () => {
  await page.goto(`${base}/ui/traces`);
  const form = page.locator('[data-testid="trace-search"]');
  await form.locator('input[name="service"]').fill(faulty);
  await form.locator('select[name="status"]').selectOption("error");
  await form.locator('input[name="service"]').press("Enter");
  await page.waitForURL(/service=/);
  await page.waitForSelector('[data-testid="trace-row"]');
  expect((await page.locator('[data-testid="trace-row"][data-error="true"]').count()) > 0, "no failed trace row");
  await page.waitForSelector('[data-testid="trace-scatter"] canvas');
  shots.traces = await screenshot("traces");
  await page.locator('[data-testid="trace-row"]').first().focus();
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-testid="waterfall"]');
});

await context.close();
await browser.close();

const failed = steps.filter((s) => !s.ok);
const summary = { ok: failed.length === 0 && problems.length === 0, base, out, steps, problems, timings, screenshots: shots, trace: traceHref };
writeFileSync(join(out, "summary.json"), JSON.stringify(summary, null, 2));
for (const problem of problems) console.log(`PROBLEM ${problem}`);
console.log(`E2E-SUMMARY ${JSON.stringify({ ok: summary.ok, failed: failed.map((s) => s.name), problems: problems.length, timings, out })}`);
process.exit(summary.ok ? 0 : 1);
