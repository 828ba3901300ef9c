// The result list: only the rows in view are in the DOM; a row expands (click, Enter or
// Space) to its fields, with links from its trace and span ids to the trace view.
import { useRef, useState } from "preact/hooks";
import type { LogRow } from "./api";
import { openTrace, traceHref } from "./links";
import { useVirtualizer } from "./virtual";

interface Props {
  rows: LogRow[];
  /** Rows with this span id are marked (the span the view was opened for). */
  span?: string;
  footer?: preact.ComponentChildren;
}

const ROW_HEIGHT = 24;

export function LogList({ rows, span, footer }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  const [open, setOpen] = useState<Set<string>>(() => new Set());
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    getItemKey: (index) => rows[index]?.key ?? index,
  });

  const toggle = (key: string) =>
    setOpen((current) => {
      const next = new Set(current);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });

  const items = virtualizer.getVirtualItems();
  return (
    <div class="log-scroller" ref={scroller} role="list" aria-label="log lines">
      <div class="log-canvas" style={{ height: `${virtualizer.getTotalSize()}px` }}>
        {items.map((item) => {
          const row = rows[item.index];
          if (!row) return null;
          return (
            <div
              key={item.key}
              data-index={item.index}
              ref={(node) => {
                if (node) virtualizer.measureElement(node);
              }}
              class="log-slot"
              style={{ transform: `translateY(${item.start}px)` }}
            >
              <Row row={row} expanded={open.has(row.key)} marked={!!span && row.spanId === span} onToggle={() => toggle(row.key)} />
            </div>
          );
        })}
      </div>
      {footer && <div class="log-footer">{footer}</div>}
    </div>
  );
}

function Row({ row, expanded, marked, onToggle }: { row: LogRow; expanded: boolean; marked: boolean; onToggle: () => void }) {
  return (
    <div class={`log-row level-${row.level ?? "unknown"}${expanded ? " open" : ""}${marked ? " marked" : ""}`} data-testid="log-row" data-service={row.service} role="listitem">
      <div
        class="log-line"
        tabIndex={0}
        aria-expanded={expanded}
        onClick={(e) => {
          if ((e.target as HTMLElement).closest("a")) return;
          onToggle();
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            onToggle();
          } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
            e.preventDefault();
            const slot = (e.currentTarget as HTMLElement).closest(".log-slot");
            const sibling = e.key === "ArrowDown" ? slot?.nextElementSibling : slot?.previousElementSibling;
            (sibling?.querySelector(".log-line") as HTMLElement | null)?.focus();
          }
        }}
      >
        <span class="log-level" title={row.severity ?? row.level ?? "unknown severity"}>
          {(row.level ?? "—").toUpperCase()}
        </span>
        <span class="log-time">{formatStamp(row.ms)}</span>
        <span class="log-service">{row.service}</span>
        <span class="log-body">{row.body}</span>
        {row.traceId && (
          <a class="log-trace" href={traceHref(row.traceId, row.spanId)} title="open the trace" data-testid="log-trace-link" onClick={openTrace(row.traceId, row.spanId)}>
            trace ↗
          </a>
        )}
      </div>
      {expanded && <Fields row={row} />}
    </div>
  );
}

function Fields({ row }: { row: LogRow }) {
  const base: [string, preact.ComponentChildren][] = [
    ["time", `${new Date(row.ms).toISOString()} (${row.tsNs} ns)`],
    ["service", row.service],
  ];
  if (row.instance) base.push(["instance", row.instance]);
  if (row.severity || row.level) base.push(["severity", row.severity ?? row.level]);
  if (row.traceId)
    base.push([
      "trace_id",
      <a href={traceHref(row.traceId)} onClick={openTrace(row.traceId)}>
        {row.traceId}
      </a>,
    ]);
  if (row.spanId)
    base.push([
      "span_id",
      row.traceId ? (
        <a href={traceHref(row.traceId, row.spanId)} onClick={openTrace(row.traceId, row.spanId)}>
          {row.spanId}
        </a>
      ) : (
        row.spanId
      ),
    ]);
  return (
    <div class="log-fields">
      <pre class="log-full-body">{row.body}</pre>
      <FieldTable title="record" entries={base} />
      {row.labels && <FieldTable title="stream labels" entries={Object.entries(row.labels)} />}
      {Object.keys(row.attributes).length > 0 && (
        <FieldTable title={row.labels ? "structured metadata" : "attributes"} entries={Object.entries(row.attributes)} />
      )}
      {Object.keys(row.resource).length > 0 && <FieldTable title="resource" entries={Object.entries(row.resource)} />}
    </div>
  );
}

function FieldTable({ title, entries }: { title: string; entries: [string, preact.ComponentChildren][] }) {
  return (
    <table class="log-field-table">
      <caption>{title}</caption>
      <tbody>
        {entries.map(([key, value]) => (
          <tr key={key}>
            <th scope="row">{key}</th>
            <td>{value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** `HH:MM:SS.mmm`, with the date when not today. */
export function formatStamp(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return time;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}
