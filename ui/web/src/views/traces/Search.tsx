// The trace search: form (Enter submits), scatter plot of duration over time, and the
// results table (rows are focusable; Enter or a click opens the trace).
import { useMemo, useState } from "preact/hooks";
import { navigate, setParams } from "../../app/router";
import { formatDuration, formatTime } from "../../app/time";
import type { ViewProps } from "../../app/view";
import { Status } from "../../components/Link";
import { Scatter } from "../../components/Scatter";
import { serviceColor } from "../../components/colors";
import { useAsync } from "../../components/useAsync";
import { FIELD_NAMES, fieldsOf, loadOperations, loadServices, searchTraces, traceQL, type SearchFields, type TraceRow } from "./search";

const DEFAULT_LIMIT = 50;

export function Search({ params, range, tick }: ViewProps) {
  const fields = fieldsOf(params);
  const raw = params.get("q") ?? "";
  let query = raw;
  let formError: string | undefined;
  if (!raw) {
    try {
      query = traceQL(fields);
    } catch (error) {
      formError = (error as Error).message;
    }
  }
  const limit = Number(fields.limit) > 0 ? Number(fields.limit) : DEFAULT_LIMIT;
  const results = useAsync(
    formError ? null : (signal) => searchTraces(query, limit, range.start, range.end, signal),
    [query, limit, range.start, range.end, tick, formError],
  );
  const sort = params.get("sort") ?? "start";
  const rows = useMemo(() => {
    const list = [...(results.data ?? [])];
    if (sort === "duration") list.sort((a, b) => b.durationMs - a.durationMs);
    else list.sort((a, b) => b.startMs - a.startMs);
    return list;
  }, [results.data, sort]);
  const points = useMemo(() => rows.map((r) => ({ time: r.startMs, value: r.durationMs, flagged: r.errors > 0 })), [rows]);
  const open = (row: TraceRow) => navigate("traces", { trace: row.id });

  return (
    <div class="traces-search">
      <SearchForm fields={fields} raw={raw} generated={formError ? "" : query} range={range} />
      {formError && <p class="error" role="alert">{formError}</p>}
      <Status loading={results.loading && !results.data} error={results.error} empty={results.data && rows.length === 0 ? "No trace matches." : undefined} />
      {rows.length > 0 && (
        <>
          <Scatter
            points={points}
            valueLabel="duration"
            formatValue={formatDuration}
            onPick={(i) => open(rows[i])}
            testid="trace-scatter"
          />
          <p class="muted small">
            {rows.length} traces{rows.length >= limit ? ` (the first ${limit}; raise the limit for more)` : ""} · query <code>{query}</code>
          </p>
          <table class="grid results" aria-label="traces">
            <thead>
              <tr>
                <th>
                  <button type="button" class="sort" onClick={() => setParams({ sort: undefined })} aria-pressed={sort === "start"}>
                    start {sort === "start" ? "▼" : ""}
                  </button>
                </th>
                <th>root service</th>
                <th>root operation</th>
                <th class="num">
                  <button type="button" class="sort" onClick={() => setParams({ sort: "duration" })} aria-pressed={sort === "duration"}>
                    duration {sort === "duration" ? "▼" : ""}
                  </button>
                </th>
                <th class="num">spans</th>
                <th class="num">errors</th>
                <th>trace id</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr
                  key={row.id}
                  tabIndex={0}
                  data-testid="trace-row"
                  data-trace={row.id}
                  data-error={row.errors > 0 ? "true" : "false"}
                  class={row.errors > 0 ? "has-error" : ""}
                  onClick={() => open(row)}
                  onKeyDown={(e) => {
                    if (e.key === "Enter") open(row);
                  }}
                >
                  <td>{formatTime(row.startMs)}</td>
                  <td>
                    <i class="dot" style={{ background: serviceColor(row.root) }} />
                    {row.root}
                  </td>
                  <td>{row.name}</td>
                  <td class="num">{formatDuration(row.durationMs)}</td>
                  <td class="num">{row.spans}</td>
                  <td class={`num${row.errors > 0 ? " error" : ""}`}>{row.errors || ""}</td>
                  <td class="mono">{row.id}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}

function SearchForm({ fields, raw, generated, range }: { fields: SearchFields; raw: string; generated: string; range: ViewProps["range"] }) {
  const [service, setService] = useState(fields.service);
  const services = useAsync((signal) => loadServices(range.start, range.end, signal), [range.start, range.end]);
  const operations = useAsync(
    service ? (signal) => loadOperations(service, range.start, range.end, signal) : null,
    [service, range.start, range.end],
  );
  const submit = (event: Event) => {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    const patch: Record<string, string | undefined> = { trace: undefined, span: undefined };
    for (const name of FIELD_NAMES) patch[name] = String(data.get(name) ?? "").trim();
    const text = String(data.get("q") ?? "").trim();
    // A TraceQL query typed by hand wins over the fields; the generated one is not kept.
    let fromFields = "";
    try {
      fromFields = traceQL(patch as unknown as SearchFields);
    } catch {
      fromFields = "";
    }
    patch.q = text && text !== fromFields && text !== generated ? text : undefined;
    setParams(patch);
  };
  return (
    <form class="search-form" data-testid="trace-search" onSubmit={submit} key={`${raw}|${generated}`}>
      <label>
        service
        <input name="service" list="trace-services" defaultValue={fields.service} onChange={(e) => setService((e.target as HTMLInputElement).value)} autoComplete="off" />
        <datalist id="trace-services">{(services.data ?? []).map((s) => <option key={s} value={s} />)}</datalist>
      </label>
      <label>
        operation
        <input name="operation" list="trace-operations" defaultValue={fields.operation} autoComplete="off" />
        <datalist id="trace-operations">{(operations.data ?? []).map((s) => <option key={s} value={s} />)}</datalist>
      </label>
      <label class="wide">
        tags
        <input name="tags" defaultValue={fields.tags} placeholder='http.status_code=500 k8s.pod.name="pod-1"' />
      </label>
      <label>
        min duration
        <input name="min" defaultValue={fields.min} placeholder="100ms" size={7} />
      </label>
      <label>
        max duration
        <input name="max" defaultValue={fields.max} placeholder="5s" size={7} />
      </label>
      <label>
        status
        <select name="status">
          <option value="" selected={fields.status !== "error"}>any</option>
          <option value="error" selected={fields.status === "error"}>error</option>
        </select>
      </label>
      <label>
        limit
        <input name="limit" type="number" min={1} max={1000} defaultValue={fields.limit || String(DEFAULT_LIMIT)} size={5} />
      </label>
      <label class="full">
        TraceQL
        <input name="q" class="mono" defaultValue={raw || generated} aria-label="TraceQL" />
      </label>
      <button type="submit">Search</button>
    </form>
  );
}
