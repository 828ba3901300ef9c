// Links from the logs, metrics and SQL views to a trace: a real href (new tab, copy
// link) that navigates in place on a plain click, keeping the time range.
import { href, navigate } from "../../app/router";

/** `/ui/traces?trace=…[&span=…]` with the current `from` / `to`. */
export function traceHref(trace: string, span?: string | null): string {
  const current = new URLSearchParams(window.location.search);
  const out = new URLSearchParams();
  for (const key of ["from", "to"]) {
    const value = current.get(key);
    if (value) out.set(key, value);
  }
  out.set("trace", trace);
  if (span) out.set("span", span);
  return href("traces", out);
}

/** A click handler that opens the trace in place unless a modifier asks for a new tab. */
export function openTrace(trace: string, span?: string | null) {
  return (event: MouseEvent) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate("traces", { trace, span: span ?? undefined });
  };
}
