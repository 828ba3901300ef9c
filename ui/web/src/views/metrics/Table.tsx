// The table tab: the instant query at the end of the range, one row per series with a
// column per label, sortable by any column.
import { useEffect, useState } from "preact/hooks";
import { isAbort } from "../../api";
import { formatTime } from "../../app/time";
import { type InstantResult, queryInstant, type RangeSeries, sampleValue } from "./api";
import { ErrorBox, type QueryError, toError } from "./ErrorBox";

interface Props {
  expr: string;
  /** Evaluation time, ms. */
  time: number;
  tick: number;
}

interface Row {
  labels: Record<string, string>;
  value: string;
  /** Range vectors: every sample. */
  samples?: [number, string][];
}

export function InstantTable({ expr, time, tick }: Props) {
  const [state, setState] = useState<{ loading: boolean; data?: InstantResult; error?: QueryError }>({ loading: true });
  const [sort, setSort] = useState<{ column: string; descending: boolean }>({ column: "value", descending: true });

  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    queryInstant(expr, time, controller.signal)
      .then(({ data }) => setState({ loading: false, data }))
      .catch((error) => {
        if (isAbort(error)) return;
        setState({ loading: false, error: toError(error) });
      });
    return () => controller.abort();
  }, [expr, time, tick]);

  if (state.error) return <ErrorBox error={state.error} />;
  const data = state.data;
  if (!data) return <div class="muted">querying…</div>;
  if (data.resultType === "scalar" || data.resultType === "string") {
    return (
      <div class="instant-scalar" data-testid="metrics-table">
        <span class="muted">{data.resultType} at {formatTime(data.result[0] * 1000)}</span>
        <div class="instant-scalar-value">{data.result[1]}</div>
      </div>
    );
  }
  const rows: Row[] =
    data.resultType === "vector"
      ? data.result.map((r) => ({ labels: r.metric, value: r.value[1] }))
      : (data.result as RangeSeries[]).map((r) => ({ labels: r.metric, value: r.values[r.values.length - 1]?.[1] ?? "", samples: r.values }));
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r.labels)))].sort((a, b) =>
    a === "__name__" ? -1 : b === "__name__" ? 1 : a.localeCompare(b),
  );
  const sorted = [...rows].sort((a, b) => {
    const order = sort.descending ? -1 : 1;
    if (sort.column === "value") return order * (sampleValue(a.value) - sampleValue(b.value) || 0);
    return order * (a.labels[sort.column] ?? "").localeCompare(b.labels[sort.column] ?? "");
  });
  const header = (column: string, label = column) => (
    <th
      key={column}
      aria-sort={sort.column === column ? (sort.descending ? "descending" : "ascending") : undefined}
    >
      <button
        type="button"
        class="th-button"
        onClick={() => setSort((s) => ({ column, descending: s.column === column ? !s.descending : column === "value" }))}
      >
        {label}
        {sort.column === column ? (sort.descending ? " ▼" : " ▲") : ""}
      </button>
    </th>
  );
  return (
    <div class="instant-table-wrap">
      <div class="muted instant-caption">
        {rows.length} series at {formatTime(time)}
        {data.resultType === "matrix" ? " (range vector: last sample shown, count of samples in brackets)" : ""}
      </div>
      <table class="instant-table" data-testid="metrics-table">
        <thead>
          <tr>
            {columns.map((c) => header(c, c === "__name__" ? "metric" : c))}
            {header("value")}
          </tr>
        </thead>
        <tbody>
          {sorted.slice(0, 2000).map((row, i) => (
            <tr key={i}>
              {columns.map((c) => (
                <td key={c}>{row.labels[c] ?? ""}</td>
              ))}
              <td class="num">
                {row.value}
                {row.samples && <span class="muted"> [{row.samples.length}]</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
